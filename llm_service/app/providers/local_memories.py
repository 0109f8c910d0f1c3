"""Facts about the user found without a model: first-person sentence patterns.

"我对花生过敏" and "I'm allergic to peanuts" are facts that stay (long-term); "我下周三要去
上海出差" is a plan that passes (short-term). Each fact is rewritten in the third person
("用户对花生过敏。", "User is allergic to peanuts.") so it reads the same in any context.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from llm_service.app.providers.base import MemoryCandidate
from llm_service.app.providers.text import markdown_lines, split_sentences, trim_to_width

MAX_MEMORY_WIDTH = 120
MAX_TEXT_CHARS = 20_000

# Time words that make a statement a plan for the near future: kept for a while, not for good.
_NEAR_FUTURE = re.compile(
    r"明天|后天|今晚|今天|下周|下星期|下礼拜|下个?月|周[一二三四五六日末]|星期[一二三四五六日天]|\d+\s*[月号日]"
    r"|\b(?:tomorrow|tonight|today|next (?:week|month|year)|this (?:week|weekend|month)"
    r"|on (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday))\b",
    re.IGNORECASE,
)
_QUESTION = re.compile(r"[?？]\s*$|[吗呢么]\s*[。.]?$|我是不是|是不是")


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    rewrite: Callable[[re.Match[str]], str]
    importance: float
    long_term: bool
    needs_time: bool = False  # only a plan when the clause says when
    dated_is_plan: bool = False  # "记得明天带伞": a date makes it short-term


def _zh(prefix: str, importance: float, long_term: bool, **flags: bool) -> Pattern:
    """A pattern starting at 我 (not 我们): the fact is the rest of the clause, about 用户."""
    regex = re.compile("我(?!们)" + prefix.removeprefix("我"))
    return Pattern(regex, lambda m: "用户" + m.string[m.start() + 1 :], importance, long_term, **flags)


# Where an English fact ends: "I like tea, but …" keeps "I like tea".
_EN_CLAUSE_END = re.compile(r"\s*(?:[,;:]|\s(?:but|although|though|because|so|while)\s)", re.IGNORECASE)


def _en(pattern: str, template: str, importance: float, long_term: bool, **flags: bool) -> Pattern:
    regex = re.compile(pattern + r"\s+(?P<rest>.+)", re.IGNORECASE)

    def rewrite(match: re.Match[str]) -> str:
        fields = {name: (value or "").casefold() for name, value in match.groupdict().items()}
        fields["verb"] = _third_person(fields.get("verb", ""))
        fields["rest"] = re.sub(
            r"^my\b", "User's", _EN_CLAUSE_END.split(match.group("rest"), maxsplit=1)[0], flags=re.I
        )
        return template.format(**fields)

    return Pattern(regex, rewrite, importance, long_term, **flags)


def _third_person(verb: str) -> str:
    if not verb:
        return verb
    if verb.startswith(("don't ", "do not ")):
        return "doesn't " + verb.split()[-1]
    if verb.endswith(("sh", "ch", "s")):
        return verb + "es"
    return verb + "s"


# In order: the first that matches a sentence wins.
_PATTERNS: tuple[Pattern, ...] = (
    _zh(r"我对.{1,20}?过敏", 0.9, True),
    _zh(r"我(?:的名字)?(?:叫|是)(?=[\u4e00-\u9fff]{1,4}[，。！,.!]|[\u4e00-\u9fff]{1,4}$)", 0.9, True),
    _zh(r"我的名字", 0.9, True),
    _zh(r"我的生日", 0.8, True),
    _zh(r"我(?:住在|家在|来自|老家在)", 0.8, True),
    _zh(r"我(?:在|于).{1,20}?(?:工作|上班|上学|读书)", 0.7, True),
    _zh(r"我的(?:妻子|老婆|丈夫|老公|爱人|孩子|儿子|女儿|妈妈|母亲|爸爸|父亲|猫|狗)(?:叫|是|的名字)", 0.7, True),
    _zh(
        r"我(?:不太|不|很|特别|非常|最|真的|一直|超级)?(?:喜欢|爱吃|爱喝|讨厌|偏爱|热爱|不吃|不喝|吃素)",
        0.6,
        True,
        dated_is_plan=True,
    ),
    _zh(r"我(?:计划|打算|准备)", 0.5, False),
    _zh(r"我[^，。！？,.!?]{0,8}?(?:要|将要|得)去", 0.5, False),
    _zh(r"我[^，。！？,.!?]{0,8}?(?:要|将要|会|得)", 0.4, False, needs_time=True),
    Pattern(
        re.compile(r"^(?:请|要|一定要)?(?:记得|记住|别忘了|不要忘了)[：:，,]?\s*(?P<rest>.+)"),
        lambda m: m.group("rest").replace("我", "用户", 1) if m.group("rest").startswith("我") else m.group("rest"),
        0.7,
        True,
        dated_is_plan=True,
    ),
    _en(r"\b(?:i'm|i am) allergic to", "User is allergic to {rest}", 0.9, True),
    _en(r"\bmy name is", "User's name is {rest}", 0.9, True),
    _en(r"\b(?:call me|i'm called|i am called)", "User likes to be called {rest}", 0.8, True),
    _en(r"\bmy birthday is", "User's birthday is {rest}", 0.8, True),
    _en(r"\bi (?:live|grew up) in", "User lives in {rest}", 0.8, True),
    _en(r"\bi(?:'m| am) from", "User is from {rest}", 0.8, True),
    _en(r"\bi work (?P<prep>at|for|as|in)", "User works {prep} {rest}", 0.7, True),
    _en(
        r"\bmy (?P<who>wife|husband|partner|son|daughter|mother|father|mom|dad|dog|cat)(?:'s name)? is",
        "User's {who} is {rest}",
        0.7,
        True,
    ),
    _en(
        r"\bi (?:really |also |absolutely )?(?P<verb>love|like|enjoy|hate|dislike|prefer|don't like|do not like)",
        "User {verb} {rest}",
        0.6,
        True,
        dated_is_plan=True,
    ),
    _en(r"\bi(?:'m| am) (?P<art>a|an)(?! (?:bit|little|lot)\b)", "User is {art} {rest}", 0.6, True),
    _en(r"\bi(?:'m| am) planning to|\bi (?:plan|intend) to", "User plans to {rest}", 0.5, False),
    _en(r"\bi(?:'m| am| will be) going to", "User is going to {rest}", 0.5, False),
    _en(r"\bi (?:have|need) to", "User has to {rest}", 0.4, False, needs_time=True),
    _en(r"\bi(?: will|'ll)", "User will {rest}", 0.4, False, needs_time=True),
    _en(
        r"^(?:please\s+)?(?:remember|don't forget|do not forget)(?:\s+that)?",
        "{rest}",
        0.7,
        True,
        dated_is_plan=True,
    ),
)


def extract(text: str) -> list[MemoryCandidate]:
    """Memory candidates in the order their sentences appear, without duplicates."""
    found: dict[str, MemoryCandidate] = {}
    for sentence in _statements(text):
        for candidate in _facts(sentence):
            found.setdefault(_dedupe_key(candidate.content), candidate)
    return list(found.values())


def _statements(text: str) -> Iterator[str]:
    """The sentences of `text` that are not questions, in order."""
    for line in markdown_lines(text[:MAX_TEXT_CHARS]):
        yield from (sentence for sentence in split_sentences(line.text) if not _QUESTION.search(sentence))


_CLAUSE = re.compile(r"(?<=[，,；;])\s*|\s+(?=but\s)", re.IGNORECASE)
_FIRST_PERSON = re.compile(r"我(?!们)|\b(?:i|i'm|my)\b", re.IGNORECASE)
_REMEMBER = re.compile(r"记得|记住|别忘|不要忘|\b(?:remember|forget)\b", re.IGNORECASE)


def may_state_facts(text: str) -> bool:
    """Whether `text` has a sentence that is not a question and speaks of the user (or asks
    to remember something): the cheap test before a paid extraction call, so that a plain
    question to the assistant costs no second request."""
    return any(_FIRST_PERSON.search(sentence) or _REMEMBER.search(sentence) for sentence in _statements(text))


def _facts(sentence: str) -> list[MemoryCandidate]:
    """One fact per clause that states one; a following clause without a subject of its own
    ("我对花生过敏，吃了会起疹子") belongs to the fact before it."""
    facts: list[tuple[Pattern, str, str]] = []  # pattern, content, the clauses it came from
    for clause in (c for c in _CLAUSE.split(sentence) if c):
        hit = _match(clause)
        if hit is not None:
            facts.append((hit[0], hit[1], clause))
        elif facts and not _FIRST_PERSON.search(clause) and facts[-1][0].regex.pattern[:1] == "我":
            pattern, content, source = facts[-1]
            facts[-1] = (pattern, content + clause, source + clause)
    candidates = []
    for pattern, content, source in facts:
        content = _tidy(content)
        if not content:
            continue
        long_term = pattern.long_term and not (pattern.dated_is_plan and _NEAR_FUTURE.search(source))
        importance = pattern.importance if long_term == pattern.long_term else 0.5
        candidates.append(MemoryCandidate(content=content, importance=importance, long_term=long_term))
    return candidates


def _match(clause: str) -> tuple[Pattern, str] | None:
    for pattern in _PATTERNS:
        match = pattern.regex.search(clause)
        if match and not (pattern.needs_time and not _NEAR_FUTURE.search(clause)):
            return pattern, pattern.rewrite(match)
    return None


def _tidy(content: str) -> str:
    content = content.strip().rstrip("，,；;：:、 ")
    content = re.sub(r"[。.!！]+$", "", content).strip()
    if not content:
        return ""
    content = trim_to_width(content, MAX_MEMORY_WIDTH)
    if content[:1].isascii():
        return content[:1].upper() + content[1:] + ("" if content.endswith("…") else ".")
    return content + ("" if content.endswith("…") else "。")


def _dedupe_key(content: str) -> str:
    return re.sub(r"[\W_]+", "", content.casefold())
