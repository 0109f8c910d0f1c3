"""Plain-text tools for the offline provider: Markdown stripping, sentences, language, words.

Nothing here needs a model: Chinese is segmented with jieba, English words are lower-cased
and reduced to a rough stem so that "meeting", "meetings" and "meet" meet. Every function is
deterministic, so the same record always gets the same title, summary and tags.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import cache

import jieba

from llm_service.app.providers.base import Language

jieba.setLogLevel(logging.WARNING)

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_CJK_RUN = re.compile(f"[{_CJK}]+")
_CJK_WORD = re.compile(f"[{_CJK}]+")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)

# --- stop words: too common to say what a text is about ----------------------------------

ZH_STOP_WORDS = frozenset(
    """
    的 了 和 是 在 我 你 他 她 它 我们 你们 他们 她们 咱们 这 那 这个 那个 这些 那些 这里 那里 这样 那样
    什么 怎么 怎样 如何 为什么 为何 哪些 哪里 哪个 哪儿 哪天 几点 多少 怎么样 是否 有没有 能不能 可不可以
    吗 呢 吧 啊 呀 哦 嗯 哈 也 都 就 还 又 很 太 更 最 非常 特别 真的 已经 正在 可以 可能 应该 需要 必须
    没有 不是 不会 不要 一个 一些 一下 一起 一直 一样 因为 所以 但是 不过 而且 然后 如果 虽然 还是 或者
    以及 关于 对于 自己 大家 有 没 被 把 给 让 跟 与 及 等 之 其 此 各 每 上 下 中 里 时候 现在 刚才
    最近 之前 以后 之后 当时 目前 今天 明天 昨天 后天 前天 上周 下周 本周 这周 上个月 下个月 这个月
    本月 今年 去年 明年 早上 上午 中午 下午 晚上 今晚 昨晚 周末 记录 内容 事情 东西 知道 告诉 请问
    帮我 看看 说过 提到 觉得 感觉 还有 就是 只是 其实 然而 比较 有点 一点 有些 所有 这么 那么 怎么办
    我的 你的 他的 她的 一次 这次 那次 之类 以上 以下 出来 起来 进行 相关 问题 有关 部分 方面
    """.split()
)

EN_STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are aren as at be because been before being
    below between both but by can cannot could couldn did didn do does doesn doing don done down during
    each either else ever every few for from further get gets getting got had hadn has hasn have haven
    having he her here hers herself him himself his how however i if in into is isn it its itself just
    let like ll me might more most much must my myself need no nor not now of off on once one only or
    other our ours ourselves out over own per please quite rather re really said same say says she
    should shouldn since so some something still such than that the their theirs them themselves then
    there these they thing things this those though through thus to too under until up upon us use
    used ve very want was wasn way we well were weren what whatever when where whether which while who
    whom whose why will with within without won would wouldn yet you your yours yourself yourselves
    today tomorrow yesterday tonight week weeks last next ago morning afternoon evening day days took take taken
    takes came come comes put gave give gives felt feel saw see seen told found think thought look looked
    left kept keep try tried two three four five six seven eight nine ten hundred thousand million first second
    monday tuesday wednesday thursday friday saturday sunday lot lots anything everything nothing
    tell know record records note notes maybe going go went make made new good
    """.split()
)

_ZH_NUMERIC = re.compile(
    r"^(?:第|百分之)?[\d零〇一二两三四五六七八九十百千万亿几半点.%％:：]+[年月日号点分秒个次周天岁块元位名条件]?$"
)
_ZH_TIME = re.compile(
    r"^(?:[上下本这今明昨前后去]{1,2}(?:天|个?月|年)|[上下本这]{0,2}(?:周|星期|礼拜)[一二三四五六七日天末]?"
    r"|早上|上午|中午|下午|晚上|凌晨|傍晚|今早|明早|昨晚|今晚)$"
)


def is_cjk(text: str) -> bool:
    return bool(_CJK_CHAR.search(text))


def detect_language(text: str, default: Language = "zh-CN") -> Language:
    """zh-CN when Chinese carries most of the text (two characters count as one word)."""
    cjk = len(_CJK_CHAR.findall(text))
    latin = len(_LATIN_WORD.findall(text))
    if not cjk and not latin:
        return default
    return "zh-CN" if cjk and cjk / 2 >= latin else "en"


# --- Markdown --------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    text: str
    is_heading: bool = False


_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
_RULE = re.compile(r"^\s*([-*_=])(?:\s*\1){2,}\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s+\S+")
_BLOCK_MARKS = re.compile(r"^\s*(?:>\s?)*\s*(?:(?:[-*+]|\d{1,3}[.)])\s+)?(?:\[[ xX]\]\s+)?")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\[[^\]]*\])")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_CODE = re.compile(r"`+([^`]*)`+")
_STRONG = re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?!\*)|(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)")
_HASHTAG = re.compile(r"(?<![^\s(（])#(?=[^\s#])")


def strip_inline(text: str) -> str:
    """One line of Markdown as plain text: links become their text, marks go."""
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _CODE.sub(r"\1", text)
    text = _STRONG.sub(r"\2", text)
    text = _EMPHASIS.sub(lambda m: m.group(1) or m.group(2), text)
    text = _HASHTAG.sub("", text)
    text = text.replace("|", " ").replace("*", "")
    return " ".join(text.split())


def markdown_lines(markdown: str) -> list[Line]:
    """The non-empty lines of a Markdown text as plain text; code blocks are left out."""
    lines: list[Line] = []
    in_code = False
    for raw in unicodedata.normalize("NFC", markdown).splitlines():
        if _FENCE.match(raw):
            in_code = not in_code
            continue
        if in_code or _RULE.match(raw) or _TABLE_RULE.match(raw) or _REFERENCE.match(raw):
            continue
        heading = _HEADING.match(raw)
        body = heading.group(1) if heading else _BLOCK_MARKS.sub("", raw, count=1)
        body = strip_inline(body).lstrip("#").strip()
        if body:
            lines.append(Line(body, is_heading=bool(heading)))
    return lines


def plain_text(markdown: str) -> str:
    return "\n".join(line.text for line in markdown_lines(markdown))


# --- sentences -------------------------------------------------------------------------

_CLOSERS = "”’」』）)\"'】》"
_BOUNDARY = re.compile(rf"(?:[。！？!?]+|；|…+|\.{{3,}}|(?<=[^\s.])\.)[{re.escape(_CLOSERS)}]*")
_ABBREVIATIONS = frozenset("mr mrs ms dr prof st vs etc e.g i.e jr sr inc ltd no fig approx".split())
_WORD_BEFORE_DOT = re.compile(r"([\w.]+)\.$")
_TERMINAL = re.compile(rf"[。！？!?；;….][{re.escape(_CLOSERS)}]*$")


def split_sentences(text: str) -> list[str]:
    """Sentences of one line of plain text, each with its own end mark."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
        if match.group().startswith(".") and not match.group().startswith("..."):
            following = text[end : end + 1]
            if following and not following.isspace() and not is_cjk(following):
                continue  # 3.5, example.com, e.g.
            word = _WORD_BEFORE_DOT.search(text[max(0, match.start() - 24) : match.start() + 1])
            initial = word and len(word.group(1)) == 1 and word.group(1).isalpha()  # "J. Smith"
            if word and (word.group(1).casefold() in _ABBREVIATIONS or initial):
                continue
        piece = text[start:end].strip()
        if piece:
            sentences.append(piece)
        start = end
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def sentences_of(markdown: str, *, skip_headings: bool = False) -> list[str]:
    return [
        sentence
        for line in markdown_lines(markdown)
        if not (skip_headings and line.is_heading)
        for sentence in split_sentences(line.text)
    ]


def with_end_mark(sentence: str, language: Language) -> str:
    if _TERMINAL.search(sentence) or _URL.search(sentence.rsplit(None, 1)[-1]):
        return sentence  # "…, see https://x.org" takes no full stop: it would join the address
    return sentence + ("。" if language == "zh-CN" and is_cjk(sentence[-1:]) else ".")


# --- widths: a Chinese character is as wide as two Latin letters ------------------------


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def trim_to_width(text: str, width: int) -> str:
    """At most `width` columns; cut at a clause or word boundary where one is near, with …"""
    if display_width(text) <= width:
        return text
    room = width - 2  # the ellipsis, counted wide
    used, cut = 0, 0
    for index, ch in enumerate(text):
        used += display_width(ch)
        if used > room:
            break
        cut = index + 1
    head = text[:cut]
    clause = max(head.rfind(mark) for mark in "，,、：:；;（(—")
    if clause >= len(head) // 2:
        return head[:clause].rstrip() + "…"
    if not is_cjk(text[cut - 1 : cut + 1]) and text[cut : cut + 1].isalnum():
        space = head.rfind(" ")
        if space >= len(head) // 3:
            head = head[:space]
    return head.rstrip(" ,.;:-–—，。") + "…"


# --- words -----------------------------------------------------------------------------


def stem(word: str) -> str:
    """A rough English stem (Porter's first steps): enough to match plural and -ing/-ed forms."""
    word = word.casefold().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) <= 3:
        return word
    if word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("ies"):
        word = word[:-3] + "i"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ingly", "edly", "ing", "ed", "ions", "ion"):
        base = word[: -len(suffix)]
        if word.endswith(suffix) and len(base) >= 3 and re.search("[aeiouy]", base):
            word = base
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    if len(word) > 3 and word.endswith("y"):
        word = word[:-1] + "i"
    if len(word) > 4 and word.endswith("e"):
        word = word[:-1]
    return word


# Parts of speech (jieba's dictionary) that never make a keyword: numerals, measure words,
# times, pronouns, prepositions, conjunctions, particles, adverbs, localisers, interjections.
_FUNCTION_TAGS = frozenset("m mq q t tg r p c u uj ul uz ud ug uv d f e y o zg x".split())
_NUMERAL_START = re.compile(r"^[零〇一二两三四五六七八九十百千万几半第]")


@cache
def _word_tags() -> dict[str, str]:
    # Importing jieba.posseg reads the dictionary's tags (a second, tens of MB): only on first use.
    import jieba.posseg

    return jieba.posseg.dt.word_tag_tab


async def dictionaries_ready() -> None:
    """jieba's dictionary and its tags, loaded on a worker thread the first time, not on the
    event loop, where they would stall the whole process (`common.records.search.segmenter_ready`)."""
    if not jieba.dt.initialized:
        await asyncio.to_thread(jieba.initialize)
    if not _word_tags.cache_info().currsize:
        await asyncio.to_thread(_word_tags)


def is_zh_keyword(word: str) -> bool:
    if len(word) < 2 or not _CJK_WORD.fullmatch(word) or word in ZH_STOP_WORDS:
        return False
    if _ZH_NUMERIC.match(word) or _ZH_TIME.match(word) or _ZH_TIME.match(word[:2]):
        return False  # "今天天气" is about today, not a topic
    tag = _word_tags().get(word)
    if tag is None:  # a word jieba guessed: "一版", "三点半" are numbers, not topics
        return not _NUMERAL_START.match(word)
    return tag not in _FUNCTION_TAGS


def is_en_keyword(word: str) -> bool:
    word = word.casefold()
    return len(word) >= 3 and word not in EN_STOP_WORDS and bool(_LATIN_WORD.fullmatch(word))


_GENERIC_NOUNS = frozenset("人 事 话 点 样 种 些 时 次 个 物".split())


def is_zh_query_word(word: str) -> bool:
    """A question may ask about one character ("我的猫叫什么？"): single-character nouns count."""
    if len(word) == 1:
        return word not in _GENERIC_NOUNS and _word_tags().get(word, "").startswith("n")
    return is_zh_keyword(word)


@dataclass(frozen=True)
class Word:
    surface: str  # as written (Latin lower-cased)
    key: str  # what is compared: the Chinese word itself, or an English stem


def words(text: str, *, search: bool = False) -> list[Word]:
    """Content words in order (stop words, numbers and single characters left out).

    `search` adds the shorter words inside long Chinese ones, as a query should.
    """
    out: list[Word] = []
    text = _URL.sub(" ", text)
    position = 0
    for run in _CJK_RUN.finditer(text):
        out.extend(_latin_words(text[position : run.start()]))
        if search:
            out.extend(Word(piece, piece) for piece in jieba.cut_for_search(run.group()) if is_zh_query_word(piece))
        else:
            out.extend(Word(piece, piece) for piece in jieba.cut(run.group()) if is_zh_keyword(piece))
        position = run.end()
    out.extend(_latin_words(text[position:]))
    return out


def _latin_words(text: str) -> list[Word]:
    found = []
    for match in _LATIN_WORD.finditer(text):
        surface = match.group().casefold().replace("’", "'")
        surface = surface[:-2] if surface.endswith("'s") else surface.strip("'")
        if is_en_keyword(surface):
            found.append(Word(surface, stem(surface)))
    return found


def contains_key(text_casefolded: str, stems: set[str], key: str) -> bool:
    """Whether a text has a word: Chinese by substring (segmentation differs), English by stem."""
    return key in text_casefolded if is_cjk(key) else key in stems
