"""The public report page /reports/<YYYY-MM> (blocklist/web/public_pages.py): the JSON report's
figures in Chinese and English, counts under 10 as "<10", no complaint content, plain 400/404
pages, the JSON route's caching, no script and nothing from elsewhere; and in headless Chromium,
at desktop and phone width."""
from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

import pytest

from blocklist import apikeys, dnc_stats
from tests.conftest import START
from tests.support import serve
from tests.test_dnc import new_device as new_owner, register
from tests.test_monthly import MONTH, complain, report

try:  # the admin browser test's fixture: headless Chromium, or a skip where it is missing
    from tests.test_admin_browser import EC, WAIT, By, WebDriverWait, chromium  # noqa: F401
except pytest.skip.Exception:  # Selenium is not installed: only the browser tests skip
    @pytest.fixture
    def chromium():
        pytest.skip("selenium is not installed")

DAY = 86400
TITLES = {"en": "Nuisance calls in October 2026", "zh": "2026年10月骚扰电话盘点"}
VOID = {"meta", "link", "br", "img", "input", "hr"}  # HTML elements with no end tag


class Page(HTMLParser):
    """The text of every element with an id, and every attribute seen, of an HTML page."""

    def __init__(self, text: str):
        super().__init__()
        self.text: dict[str, str] = {}
        self.attributes: list[tuple[str, str, str]] = []  # (tag, name, value)
        self.open: list[str | None] = []  # the ids of the open elements (None: no id)
        self.style, self.in_style = "", False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        self.in_style = tag == "style"
        if tag in VOID:
            return
        element_id = dict(attrs).get("id")
        if element_id:
            self.text.setdefault(element_id, "")
        self.open.append(element_id)

    def handle_startendtag(self, tag, attrs):
        self.attributes += [(tag, name, value or "") for name, value in attrs]

    def handle_endtag(self, tag):
        self.in_style = False
        if tag not in VOID and self.open:
            self.open.pop()

    def handle_data(self, data):
        if self.in_style:
            self.style += data
        for element_id in filter(None, self.open):
            self.text[element_id] += " " + data  # the pieces of <li>Complaints<b>25</b></li> apart

    def __getitem__(self, element_id: str) -> str:
        return " ".join(self.text[element_id].split())


def page(client, month: str = MONTH, lang: str | None = None, **headers):
    return client.get(f"/reports/{month}", query_string={"lang": lang} if lang else {}, headers=headers)


def shown(response) -> Page:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    return Page(response.get_data(as_text=True))


def share_rows(html: str, svg_id: str) -> list[tuple[str, str, str]]:
    """The (key, label, figure) of each row of a share chart."""
    chart = html.split(f'id="{svg_id}"')[1].split("</svg>")[0]
    return re.findall(r'data-(?:tag|category)="(\w+)">.*?<text x="0"[^>]*>([^<]+)</text>.*?'
                      r'<text class="percent"[^>]*>([^<]+)</text>', chart, re.S)


@pytest.fixture
def filed(client, new_device):
    """12 loan, 10 fraud and 3 education complaints today, one of them with content."""
    for tag, count in (("loan", 12), ("fraud", 10), ("education", 3)):
        for n in range(count):
            complain(client, new_device(), f"+86139{len(tag):02d}{n:06d}", tag, content="secret words")


# --- the figures ---------------------------------------------------------------------------

@pytest.mark.parametrize("lang, labels", [
    ("en", {"loan": "Loans and wealth management", "fraud": "Fraud", "education": "Education and training"}),
    ("zh", {"loan": "贷款理财", "fraud": "诈骗", "education": "教育培训"})])
def test_both_languages_show_the_reports_figures(client, filed, lang, labels):
    body = report(client).get_json()
    response = page(client, lang=lang)
    html = response.get_data(as_text=True)
    shown_page = shown(response)
    assert f'<html lang="{lang}">' in html
    assert shown_page["title"] == TITLES[lang]
    assert shown_page["complaints"].endswith(" 25") and body["complaints"] == 25
    assert share_rows(html, "categories") == [("loan", labels["loan"], "12 · 48.0 %"),
                                              ("fraud", labels["fraud"], "10 · 40.0 %"),
                                              ("education", labels["education"], "&lt;10")]
    for case in body["cases"]:  # every agency's row, as the JSON has it
        row = re.search(rf'<tr data-agency="{case["agency"]}"><td>([^<]+)</td><td class="n">([^<]+)</td>'
                        rf'<td class="n">([^<]+)</td></tr>', html)
        assert row.groups() == (case[f"name_{lang}"], dnc_stats.shown(case["received"]).replace("<", "&lt;"),
                                dnc_stats.shown(case["upheld"]).replace("<", "&lt;"))
    assert html.count('<rect class="bar"') == 31  # a bar a day of October
    assert "<title>2026-10-28: 25</title>" in html and "<title>2026-10-27: &lt;10</title>" in html
    assert {"en": "peak 25 a day", "zh": "单日最高 25 件"}[lang] in shown_page["days"]
    assert "2026-10-01" in shown_page["days"] and "2026-10-31" in shown_page["days"]
    assert shown_page["json"] == "JSON" and ("a", "href", f"/v1/public/reports/{MONTH}") in shown_page.attributes
    assert ("a", "href", f"/v1/public/reports/{MONTH}?format=csv") in shown_page.attributes


def test_a_withheld_count_is_shown_as_under_ten(client, new_device):
    for n in range(9):
        complain(client, new_device(), f"+861380013{n:04d}")
    for lang in ("en", "zh"):
        shown_page = shown(page(client, lang=lang))
        for figure in ("complaints", "marked", "ring-once", "dnc-registrations"):
            assert shown_page[figure].endswith(" <10"), (lang, figure, shown_page[figure])
        assert "<10" in shown_page["withheld-note"] and "10" in shown_page["withheld-note"]
    assert report(client).get_json()["complaints"] is None  # the JSON withholds the same


def test_large_counts_have_thousands_separators(client, store):
    counters = store.keys.complaint_month(MONTH)
    store.redis.hset(counters, mapping={"n": 1234567, "t:fraud": 1234567, "d28": 1234567, "received:police": 23456})
    shown_page = shown(page(client, lang="en"))
    assert shown_page["complaints"] == "Complaints 1,234,567"
    assert "1,234,567 · 100.0 %" in shown_page["categories"] and "peak 1,234,567 a day" in shown_page["days"]
    assert "Public security 23,456 <10" in shown_page["cases"]


def test_the_page_shows_no_complaint_content_nor_an_unverified_number(client, filed):
    for lang in ("en", "zh"):
        html = page(client, lang=lang).get_data(as_text=True)
        assert "secret words" not in html
        assert "+86139" not in html  # no case is upheld: no number is exposed


def test_the_exposure_and_the_do_not_call_figures(client, new_device, store):
    key = {"Authorization": f"Bearer {apikeys.create(store, 'pboc', 'regulator', 'finance')}"}
    for n in range(10):
        case_id = complain(client, new_device(), f"+861380013{n:04d}")["case_id"]
        client.post(f"/v1/regulator/cases/{case_id}/transition", json={"to": "verifying"}, headers=key)
        assert client.post(f"/v1/regulator/cases/{case_id}/transition", headers=key,
                           json={"to": "upheld", "company": "Acme <Loans> 有限公司"}).status_code == 200
    owner = new_owner(store)
    for i in range(12):
        register(store, owner, f"+861390013{i:04d}", {"refuse": ["loan", "insurance"]})
    for _ in range(10):
        dnc_stats.note_violation(store, None, "loan", int(START // DAY))
    dnc_stats.note_violation(store, None, "insurance", int(START // DAY))  # 1: withheld, not charted

    en, zh = (page(client, lang=lang) for lang in ("en", "zh"))
    html = en.get_data(as_text=True)
    assert "Acme &lt;Loans&gt; 有限公司" in html and "<Loans>" not in html  # escaped
    assert shown(en)["exposure"].startswith("Company Numbers Categories Upheld cases Acme <Loans> 有限公司 "
                                            "+8613800130000, +8613800130001")
    assert shown(en)["exposure"].endswith("Loans and wealth management 10")
    assert shown(zh)["exposure"].endswith("贷款理财 10")
    assert shown(en)["dnc-registrations"] == "Registrations 12" and shown(en)["dnc-new"] == "New this month 12"
    refusals = dict((key, figure) for key, _, figure in share_rows(html, "dnc-refusals"))
    assert refusals["loan"] == refusals["insurance"] == "12 · 100.0 %" and refusals["securities"] == "&lt;10"
    assert refusals["accept_windows"] == "&lt;10"
    assert share_rows(html, "dnc-violations") == [("loan", "Loans and wealth management", "10 · 100.0 %")]
    assert share_rows(zh.get_data(as_text=True), "dnc-violations") == [("loan", "贷款理财", "10 · 100.0 %")]
    assert "CN 12 100.0 %" in shown(en)["dnc-regions"]


# --- languages -----------------------------------------------------------------------------

@pytest.mark.parametrize("accept, lang", [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh"), ("zh-TW", "zh"), ("fr-FR,zh;q=0.5", "zh"),
    ("en-US,en;q=0.9,zh-CN;q=0.8", "en"), ("fr", "en"), (None, "en")])
def test_the_language_follows_accept_language(client, accept, lang):
    response = page(client, **({"Accept-Language": accept} if accept else {}))
    assert shown(response)["title"] == TITLES[lang]
    assert "Accept-Language" in response.headers["Vary"]


def test_the_query_chooses_the_language_and_the_link_switches_it(client):
    zh = shown(page(client, lang="zh", **{"Accept-Language": "en"}))
    assert zh["title"] == TITLES["zh"] and zh["lang-switch"] == "English"
    assert ("a", "href", f"/reports/{MONTH}?lang=en") in zh.attributes
    en = shown(page(client, lang="en", **{"Accept-Language": "zh"}))
    assert en["title"] == TITLES["en"] and en["lang-switch"] == "中文"
    assert ("a", "href", f"/reports/{MONTH}?lang=zh") in en.attributes
    assert shown(page(client, lang="fr"))["title"] == TITLES["en"]  # an unknown one: as if not asked


# --- refusals ------------------------------------------------------------------------------

@pytest.mark.parametrize("month, status", [("2026-13", 400), ("26-10", 400), ("x", 400), ("0999-01", 400),
                                           ("2026-11", 404), ("2031-01", 404)])
@pytest.mark.parametrize("lang, words", [("en", {400: "is not a month", 404: "has not begun"}),
                                         ("zh", {400: "不是有效的月份", 404: "尚未开始"})])
def test_a_bad_or_future_month_is_a_plain_page_in_the_language(client, month, status, lang, words):
    response = page(client, month, **{"Accept-Language": lang})
    text = response.get_data(as_text=True)
    assert response.status_code == status and response.mimetype == "text/html"
    assert f'<html lang="{lang}">' in text and words[status] in Page(text)["error"]
    assert "Traceback" not in text and response.headers["Cache-Control"] == "no-store"


# --- caching and headers -------------------------------------------------------------------

def test_a_live_month_is_cached_briefly_and_answers_304(client, filed):
    first, again = page(client, lang="en"), page(client, lang="en")
    assert first.headers["Cache-Control"] == "public, max-age=300"
    assert first.headers["ETag"] == again.headers["ETag"]  # no per-request nonce in the page
    assert page(client, lang="zh").headers["ETag"] != first.headers["ETag"]
    assert "is not over yet" in shown(first)["frozen-note"]
    unchanged = page(client, lang="en", **{"If-None-Match": first.headers["ETag"]})
    assert unchanged.status_code == 304 and unchanged.get_data() == b""


def test_a_past_month_is_frozen_with_its_etag(client, filed, clock, store):
    clock.advance(days=5)  # November
    frozen = page(client, lang="zh")
    assert frozen.headers["Cache-Control"] == "public, max-age=86400, immutable"
    assert shown(frozen)["frozen-note"] == "本月已结束，报告已定稿，不再变动。"
    store.redis.delete(store.keys.complaint_month(MONTH))  # the counters gone: the frozen report stays
    assert page(client, lang="zh").headers["ETag"] == frozen.headers["ETag"]
    assert page(client, lang="zh", **{"If-None-Match": frozen.headers["ETag"]}).status_code == 304


def test_the_page_runs_no_script_and_loads_nothing_from_elsewhere(client, filed):
    response = page(client)
    csp = response.headers["Content-Security-Policy"]
    shown_page = shown(response)
    style_hash = base64.b64encode(hashlib.sha256(shown_page.style.encode()).digest()).decode()
    assert f"style-src 'sha256-{style_hash}';" in csp and "script-src 'none'" in csp and "nonce" not in csp
    assert "frame-ancestors 'none'" in csp and response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script" not in response.get_data(as_text=True)
    assert not [a for a in shown_page.attributes if a[1] in ("src", "srcset") or a[1].startswith("on")]
    assert all(value.startswith("/") for tag, name, value in shown_page.attributes if name == "href")


# --- in a browser --------------------------------------------------------------------------

def test_the_page_in_headless_chromium_on_a_desktop_and_a_phone(app, client, filed, chromium, tmp_path):
    wait = WebDriverWait(chromium, WAIT)
    with serve(app) as base:
        chromium.set_window_size(1200, 1600)
        chromium.get(f"{base}/reports/{MONTH}?lang=en")
        assert chromium.find_element(By.ID, "title").text == TITLES["en"]
        assert chromium.find_element(By.TAG_NAME, "header").value_of_css_property("display") == "flex"  # CSS ran
        assert chromium.find_elements(By.CSS_SELECTOR, "#categories g.category")[0].get_attribute("data-tag") == "loan"
        chromium.save_screenshot(str(tmp_path / "report-desktop.png"))

        chromium.set_window_size(375, 812)
        chromium.refresh()
        for lang in ("en", "zh"):
            assert chromium.execute_script("return window.innerWidth") == 375
            assert chromium.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
            # Every chart's texts lie inside its viewBox (a glyph may overhang by a unit), at a size a phone reads.
            outside = chromium.execute_script("""
                const out = [];
                for (const svg of document.querySelectorAll('svg')) {
                  const box = svg.viewBox.baseVal;
                  for (const t of svg.querySelectorAll('text')) {
                    const b = t.getBBox();
                    if (b.x < -1.5 || b.x + b.width > box.width + 1.5 || t.getBoundingClientRect().height < 10)
                      out.push(svg.id + ': ' + t.textContent);
                  }
                }
                return out;""")
            assert outside == [], lang
            chromium.save_screenshot(str(tmp_path / f"report-phone-{lang}.png"))
            if lang == "en":
                chromium.find_element(By.ID, "lang-switch").click()
                wait.until(EC.text_to_be_present_in_element((By.ID, "title"), TITLES["zh"]))
                assert chromium.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh"
        chromium.find_element(By.ID, "lang-switch").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "title"), TITLES["en"]))
        assert not [e for e in chromium.get_log("browser") if "Content Security Policy" in e["message"]]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "report-desktop.png", "report-phone-en.png", "report-phone-zh.png"]
