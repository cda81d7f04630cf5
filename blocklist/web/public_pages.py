"""The public report page `/reports/<YYYY-MM>`: the month's report (blocklist/monthly.py, the one
`GET /v1/public/reports/<YYYY-MM>` answers) as HTML in Chinese or English, with its charts,
readable on a phone and cached as the JSON is.

It runs no script and loads nothing from elsewhere. Its one style block is allowed by its hash,
not by a nonce: a nonce would change the page on every request, and its ETag with it.
"""
from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from flask import Blueprint, Response, current_app, make_response, render_template, request, url_for

from .. import monthly, tags
from ..dnc_stats import SUPPRESS_BELOW, shown
from ..errors import NotFound, ValidationFailed
from .admin import day_bars, page_headers, percent, share_bars
from .complaints_api import MONTH
from .routes import route

bp = Blueprint("public", __name__)

LANGUAGES = ("en", "zh")  # the first is the default, and wins a tie in Accept-Language
MONTH_PATTERN = re.compile(MONTH["schema"]["pattern"])  # the months the JSON route documents
DAY_CHART = (360, 120)  # width and height of the complaints-per-day bars: about 1:1 on a phone
SHARE_CHART = (360, 44, 0)  # width, row height, label column (none: the label sits above its bar)
SHARE_ABOVE = 18  # height of the label's line above each bar
SHARE_TAIL = 118  # room after the longest bar for its figure, "123,456 · 100.0 %"
ENGLISH_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December")
STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 760px; padding: 0 16px 48px; color: #222; }
header { display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between; gap: 0 16px;
         border-bottom: 1px solid #ddd; }
h1 { font-size: 22px; margin: 16px 0 8px; } h2 { font-size: 17px; margin-top: 32px; } h3 { font-size: 15px; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 8px; padding: 0;
           list-style: none; }
.figures li { background: #f6f6f6; border-radius: 4px; padding: 8px 12px; }
.figures b { display: block; font-size: 22px; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eee; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f6f6f6; } .n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.note { color: #444; background: #f4f7fb; padding: 8px 12px; border-radius: 4px; }
.error { background: #fdecea; color: #8a1c12; } .muted { color: #777; }
svg { display: block; width: 100%; max-width: 540px; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: #333; }
.bar { fill: #3b73b9; } .share { fill: #d9822b; }
"""
STYLE_SOURCE = "'sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode() + "'"

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "language": "English", "site": "CallMark", "title": "Nuisance calls in %(month)s",
        "complaints": "Complaints", "marked": "Numbers newly marked", "ring_once": "Ring-once numbers detected",
        "per_day": "Complaints per day", "peak": "peak %(n)s a day",
        "per_day_label": "Complaints per day from %(start)s to %(end)s",
        "categories": "Complaints by category", "no_complaints": "No complaints this month.",
        "cases": "Cases by agency", "agency": "Agency", "received": "Received", "upheld": "Upheld",
        "exposure": "Exposure: companies an agency verified", "company": "Company", "numbers": "Numbers",
        "categories_column": "Categories", "upheld_cases": "Upheld cases", "list_separator": ", ",
        "no_exposure": "No case was upheld this month.",
        "dnc": "Do-Not-Call registry", "registrations": "Registrations", "new": "New this month",
        "removed": "Removed", "expired": "Expired", "scrubs": "Scrubs", "numbers_scrubbed": "Numbers scrubbed",
        "callable": "Callable after a scrub",
        "refusals": "Share of registrations refusing each category", "accept_windows": "With accept windows",
        "violations": "Violations by category",
        "no_violations": "No category had %(n)s or more violations.",
        "regions": "Registrations by region", "region": "Region", "share": "Share", "other_region": "Other regions",
        "withheld": "Counts under %(n)s are withheld and shown as <%(n)s, so that no one can be singled out.",
        "frozen": "This month is over: its report is frozen and will not change.",
        "live": "This month is not over yet: its figures are updated until it ends.",
        "download": "The same report as data:",
        "bad_month": "“%(month)s” is not a month: write it as YYYY-MM, for example 2026-10.",
        "future_month": "The month %(month)s has not begun.", "unavailable": "No report",
    },
    "zh": {
        "language": "中文", "site": "CallMark", "title": "%(month)s骚扰电话盘点",
        "complaints": "投诉总量", "marked": "新标记号码", "ring_once": "发现“响一声”号码",
        "per_day": "每日投诉量", "peak": "单日最高 %(n)s 件",
        "per_day_label": "%(start)s 至 %(end)s 每日投诉量",
        "categories": "投诉类别占比", "no_complaints": "本月没有投诉。",
        "cases": "各部门受理情况", "agency": "部门", "received": "受理", "upheld": "查实",
        "exposure": "曝光：经主管部门核实的企业", "company": "企业", "numbers": "号码",
        "categories_column": "类别", "upheld_cases": "查实案件", "list_separator": "、",
        "no_exposure": "本月没有查实的案件。",
        "dnc": "“免打扰”登记", "registrations": "登记号码", "new": "本月新增",
        "removed": "注销", "expired": "过期", "scrubs": "比对次数", "numbers_scrubbed": "比对号码",
        "callable": "比对后可拨打",
        "refusals": "拒接各类营销电话的登记占比", "accept_windows": "设有接听时段",
        "violations": "各类别违规呼叫",
        "no_violations": "没有哪一类别的违规呼叫达到 %(n)s 次。",
        "regions": "各地区登记", "region": "地区", "share": "占比", "other_region": "其他地区",
        "withheld": "少于 %(n)s 的数字不予公布，显示为“<%(n)s”，以免识别出个人。",
        "frozen": "本月已结束，报告已定稿，不再变动。",
        "live": "本月尚未结束，数据将持续更新至月底。",
        "download": "同一报告的数据格式：",
        "bad_month": "“%(month)s”不是有效的月份，请写成 YYYY-MM，例如 2026-10。",
        "future_month": "%(month)s 尚未开始。", "unavailable": "无法显示报告",
    },
}


def _store():
    return current_app.extensions["callmark"]


def _language() -> str:
    """?lang=zh or ?lang=en; else the one Accept-Language prefers (Chinese only if it ranks above English)."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES, default=LANGUAGES[0])


def _month_name(month: str, lang: str) -> str:
    year, number = int(month[:4]), int(month[5:7])
    return f"{year}年{number}月" if lang == "zh" else f"{ENGLISH_MONTHS[number - 1]} {year}"


def _tag_name(code: str, lang: str) -> str:
    tag = tags.BY_CODE.get(code)
    return getattr(tag, f"name_{lang}") if tag else code


def _figure(count: int | None, share: float | None) -> str:
    """A share row's figure: "1,234 · 30.9 %", or "<10" when withheld."""
    return shown(count) if share is None else f"{shown(count)} · {percent(share)}"


def _shares(rows: list[dict[str, Any]], count: str, lang: str) -> list[dict[str, Any]]:
    """Share-chart rows of `rows`, a withheld one (no share) drawn as the shortest bar."""
    drawn = [{**row, "share": row["share"] or 0, "figure": _figure(row[count], row["share"])} for row in rows]
    return share_bars(drawn, SHARE_CHART, SHARE_TAIL, (f"name_{lang}",))


def _context(report: dict[str, Any], frozen: bool, lang: str) -> dict[str, Any]:
    """What report.html shows of the month's public report."""
    per_day = report["complaints_per_day"]
    dnc = report["do_not_call"]
    published = [row for row in dnc["violations"] if row["violations"] is not None]
    return {
        "frozen": frozen,
        "days": day_bars([{**day, "drawn": day["complaints"] or 0} for day in per_day], "drawn", DAY_CHART),
        "peak": max((day["complaints"] for day in per_day if day["complaints"] is not None), default=None),
        "categories": _shares(report["category_shares"], "complaints", lang),
        "refusals": _shares(dnc["refusals"] + [{"category": "accept_windows", **dnc["accept_windows"],
                                                f"name_{lang}": TEXT[lang]["accept_windows"]}],
                            "registrations", lang),
        "violations": _shares([{**row, f"name_{lang}": _tag_name(row["category"], lang)} for row in published],
                              "violations", lang),
        "exposure": [{**entry, "category_names": [_tag_name(code, lang) for code in entry["categories"]]}
                     for entry in report["exposure"]],
        "json_url": url_for("complaints.monthly_report", month=report["month"]),
        "csv_url": url_for("complaints.monthly_report", month=report["month"], format="csv"),
    }


def _page(lang: str, month: str, status: int = 200, **context: Any) -> Response:
    other = next(code for code in LANGUAGES if code != lang)
    html = render_template("report.html", lang=lang, t=TEXT[lang], other=other, other_name=TEXT[other]["language"],
                           switch_url=url_for(".report_page", month=month, lang=other), month=month,
                           style=STYLE, shown=shown, percent=percent, suppress_below=SUPPRESS_BELOW,
                           day_chart=DAY_CHART, share_chart=SHARE_CHART, share_above=SHARE_ABOVE, **context)
    return make_response(html, status)


def _refused(lang: str, month: str, text: str, status: int) -> Response:
    response = _page(lang, month, status, error=TEXT[lang][text] % {"month": month})
    response.headers["Cache-Control"] = "no-store"  # a future month is there once it begins
    return response


@route(bp, "GET", "/reports/<month>", doc=None)  # a page, not part of the API document
def report_page(month: str):
    lang = _language()
    if not MONTH_PATTERN.fullmatch(month):
        return _refused(lang, month, "bad_month", 400)
    try:
        report, frozen = monthly.report(_store(), month)
    except ValidationFailed:
        return _refused(lang, month, "bad_month", 400)
    except NotFound:
        return _refused(lang, month, "future_month", 404)
    response = _page(lang, month, report=report, month_name=_month_name(month, lang),
                     **_context(report, frozen, lang))
    # The JSON route's caching: an ETag of the body, and a frozen month's page never changes.
    response.set_etag(hashlib.sha256(response.get_data()).hexdigest())
    response.headers["Cache-Control"] = "public, max-age=86400, immutable" if frozen else "public, max-age=300"
    return response.make_conditional(request)


@bp.after_request
def security_headers(response: Response) -> Response:
    """The admin pages' rules, with the style allowed by its hash."""
    page_headers(response, STYLE_SOURCE)
    response.vary.add("Accept-Language")  # the language, unless ?lang= names it
    return response
