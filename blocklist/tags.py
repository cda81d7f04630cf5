"""The tag taxonomy. A tag's position is its severity rank and its index in storage."""
from __future__ import annotations

from dataclasses import dataclass

SPAM, INFO, SAFE = "spam", "info", "safe"


@dataclass(frozen=True)
class Tag:
    code: str
    name_en: str
    name_zh: str
    kind: str  # spam: counts toward warn/block; info: labels only; safe: counts against spam
    marketing: bool = False  # a kind of commercial marketing a Do-Not-Call registration may refuse


# Most severe first: the order breaks ties between labels. Append new tags at the end of
# their kind only with care: the index of a tag is stored with every vote, so existing
# tags must never move.
TAXONOMY: tuple[Tag, ...] = (
    Tag("fraud", "Fraud", "诈骗", SPAM),
    Tag("debt_collection", "Debt collection", "催收", SPAM),
    Tag("loan", "Loans and wealth management", "贷款理财", SPAM, marketing=True),
    Tag("securities", "Securities and stocks", "证券股票", SPAM, marketing=True),
    Tag("harassment", "Harassment", "骚扰电话", SPAM),
    Tag("ring_once", "Ring once", "响一声", SPAM),
    Tag("real_estate", "Real-estate agent", "房产中介", SPAM, marketing=True),
    Tag("insurance", "Insurance sales", "保险推销", SPAM, marketing=True),
    Tag("education", "Education and training", "教育培训", SPAM, marketing=True),
    Tag("recruitment", "Recruitment", "人才招聘", SPAM, marketing=True),
    Tag("health", "Health care", "医疗保健", SPAM, marketing=True),
    Tag("travel", "Travel and visas", "旅游签证", SPAM, marketing=True),
    Tag("housekeeping", "Housekeeping services", "家政服务", SPAM, marketing=True),
    Tag("telemarketing", "Telemarketing", "广告推销", SPAM, marketing=True),
    Tag("silent", "Silent call", "无声电话", SPAM),
    Tag("delivery", "Delivery", "快递外卖", INFO),
    Tag("customer_service", "Customer service", "客服", INFO),
    Tag("safe", "Safe number", "正常号码", SAFE),
)

BY_CODE: dict[str, Tag] = {tag.code: tag for tag in TAXONOMY}
MARKETING: tuple[str, ...] = tuple(tag.code for tag in TAXONOMY if tag.marketing)  # what Do-Not-Call can refuse
INDEX: dict[str, int] = {tag.code: i for i, tag in enumerate(TAXONOMY)}
# One character per tag index, the form the Lua scripts read kinds in.
KINDS = "".join({SPAM: "s", INFO: "i", SAFE: "x"}[tag.kind] for tag in TAXONOMY)


def describe() -> list[dict]:
    """The taxonomy as `GET /v1/tags` serves it."""
    return [
        {"code": t.code, "name_en": t.name_en, "name_zh": t.name_zh, "kind": t.kind, "severity": i,
         "marketing": t.marketing}
        for i, t in enumerate(TAXONOMY)
    ]
