"""Titles, summaries and tags taken from a record's own text (the offline provider's analysis).

The title is the record's first heading or first sentence; the summary is the one to three
most central sentences (TextRank over shared words), in their original order; tags are
jieba's TF-IDF keywords for Chinese and the most frequent content words for English, with
the user's existing tags first when the text mentions them.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter

from common.records.tags import MAX_TAG_LENGTH, normalise_tags
from llm_service.app.providers.base import Language
from llm_service.app.providers.text import (
    is_cjk,
    is_en_keyword,
    is_zh_keyword,
    markdown_lines,
    sentences_of,
    split_sentences,
    stem,
    strip_inline,
    trim_to_width,
    with_end_mark,
    words,
)

TITLE_WIDTH = 60  # 30 Chinese characters or 60 Latin ones
SUMMARY_CHARS = 200
SHORT_TEXT_CHARS = 80  # a record this short is its own summary
MAX_TAGS = 5
MAX_PREFERRED_TAGS = 3
MAX_SENTENCES = 200  # TextRank is quadratic; long records are ranked on their beginning
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_BOOK_TITLE = re.compile(r"《([^《》\n]{2,16})》")


def make_title(content: str, own_title: str | None = None) -> str:
    """The record's own title, else its first heading or first sentence, trimmed; "" if none."""
    if own_title and (plain := strip_inline(own_title).lstrip("#").strip()):
        return trim_to_width(plain, TITLE_WIDTH)
    lines = markdown_lines(content)
    if not lines:
        return ""
    first = lines[0].text if lines[0].is_heading else split_sentences(lines[0].text)[0]
    first = first.rstrip("。.！!？?；;：:，,") or first
    return trim_to_width(first, TITLE_WIDTH)


def summarize(content: str, language: Language) -> str:
    """One to three of the record's most central sentences, in order, at most 200 characters."""
    sentences = sentences_of(content, skip_headings=True) or sentences_of(content)
    joiner = "" if language == "zh-CN" else " "
    whole = joiner.join(with_end_mark(s, language) for s in sentences)
    if len(whole) <= SHORT_TEXT_CHARS:
        return whole
    ranked = _rank_sentences(sentences[:MAX_SENTENCES])
    chosen: list[int] = []
    length = 0
    for index in ranked:
        sentence = with_end_mark(sentences[index], language)
        if len(chosen) == 3:
            break
        if length + len(sentence) + len(joiner) > SUMMARY_CHARS:
            continue
        chosen.append(index)
        length += len(sentence) + len(joiner)
    if not chosen:  # even the best sentence is too long on its own
        return trim_to_width(sentences[ranked[0]], SUMMARY_CHARS)[:SUMMARY_CHARS]
    return joiner.join(with_end_mark(sentences[i], language) for i in sorted(chosen))


def _rank_sentences(sentences: list[str]) -> list[int]:
    """Sentence indexes, most central first (TextRank; ties keep the earlier sentence)."""
    keys = [set(w.key for w in words(s)) for s in sentences]
    n = len(sentences)
    weights = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            shared = len(keys[i] & keys[j])
            if shared and len(keys[i]) > 1 and len(keys[j]) > 1:
                weights[i][j] = weights[j][i] = shared / (math.log(len(keys[i])) + math.log(len(keys[j])))
    totals = [sum(row) for row in weights]
    # Who passes weight to whom, normalised by the giver's total (sparse: most pairs share nothing).
    incoming = [[(j, weights[j][i] / totals[j]) for j in range(n) if weights[j][i]] for i in range(n)]
    scores = [1.0] * n
    for _ in range(30):
        scores = [0.15 + 0.85 * sum(share * scores[j] for j, share in incoming[i]) for i in range(n)]
    # A sentence without content words says little; the opening sentence usually says most.
    for i in range(n):
        if not keys[i]:
            scores[i] = 0.0
    if n:
        scores[0] *= 1.1
    return sorted(range(n), key=lambda i: (-round(scores[i], 9), i))


# --- tags ------------------------------------------------------------------------------


def make_tags(content: str, title: str | None, existing_tags: tuple[str, ...], language: Language) -> tuple[str, ...]:
    """One to five tags: existing tags the text mentions first, then its own keywords."""
    text = "\n".join(line.text for line in markdown_lines("\n".join(filter(None, [title, content]))))
    text = _URL.sub(" ", text)
    if not text.strip():
        return ()
    preferred = _mentioned_tags(text, existing_tags)[:MAX_PREFERRED_TAGS]
    keywords = _zh_keywords(text) if language == "zh-CN" else _en_keywords(text)
    by_stem = {_tag_key(tag): tag for tag in _usable(existing_tags)}
    candidates = preferred + [by_stem.get(_tag_key(word), word) for word in keywords]
    tags = normalise_tags([tag for tag in candidates if len(unicodedata.normalize("NFKC", tag)) <= MAX_TAG_LENGTH])
    return tuple(tags[:MAX_TAGS])


def _usable(tags: tuple[str, ...]) -> list[str]:
    """Existing tags worth matching: not one Chinese character or one Latin letter."""
    try:
        cleaned = normalise_tags(list(tags))
    except ValueError:
        cleaned = [t for t in (tag.strip().casefold() for tag in tags) if t and len(t) <= MAX_TAG_LENGTH]
    return [tag for tag in cleaned if len(tag) >= 2]


def _tag_key(tag: str) -> str:
    tag = tag.casefold()
    return tag if is_cjk(tag) or " " in tag else stem(tag)


def _mentioned_tags(text: str, existing_tags: tuple[str, ...]) -> list[str]:
    """The user's tags that occur in the text (case-insensitive), in order of first mention."""
    folded = text.casefold()
    stems = {w.key: w.surface for w in words(text)}
    found: list[tuple[int, str]] = []
    for tag in _usable(existing_tags):
        if is_cjk(tag):
            position = folded.find(tag)
        else:
            match = re.search(rf"(?<![a-z0-9]){re.escape(tag)}(?![a-z0-9])", folded)
            if not match and " " not in tag and stem(tag) in stems:
                match = re.search(rf"(?<![a-z0-9]){re.escape(stems[stem(tag)])}(?![a-z0-9])", folded)
            position = match.start() if match else -1
        if position >= 0:
            found.append((position, tag))
    return [tag for _, tag in sorted(found)]


def _zh_keywords(text: str) -> list[str]:
    """jieba's TF-IDF keywords, without stop words, numbers, times and single characters."""
    limit = 3 if len(text) < 60 else MAX_TAGS
    keywords = list(dict.fromkeys(_BOOK_TITLE.findall(text)))[:2]  # 《三体》: a book or film is the topic
    # jieba.analyse loads its IDF table (over 100 MB) on import: only when first needed.
    import jieba.analyse

    for word in jieba.analyse.extract_tags(text, topK=40):
        word = word.strip()
        if len(keywords) >= limit:
            break
        if any(word in title for title in keywords):
            continue
        if is_zh_keyword(word) or (not is_cjk(word) and is_en_keyword(word) and len(word) <= MAX_TAG_LENGTH):
            keywords.append(word)
    return keywords


def _en_keywords(text: str) -> list[str]:
    """The most frequent content words (by stem, shown as their commonest spelling)."""
    found = words(text)
    if not found:
        return []
    counts = Counter(w.key for w in found)
    spellings: dict[str, Counter[str]] = {}
    first_seen: dict[str, int] = {}
    for index, w in enumerate(found):
        spellings.setdefault(w.key, Counter())[w.surface] += 1
        first_seen.setdefault(w.key, index)
    first_line = {w.key for w in words(split_sentences(text.splitlines()[0])[0])} if text.strip() else set()

    def score(key: str) -> float:
        return counts[key] * 2 + (1 if key in first_line else 0) + (0.5 if len(key) >= 6 else 0)

    ranked = sorted(counts, key=lambda key: (-score(key), first_seen[key]))
    repeated = [key for key in ranked if counts[key] > 1]
    chosen = repeated[:MAX_TAGS] if len(repeated) >= 3 else (repeated + [k for k in ranked if counts[k] == 1])[:3]
    return [min(spellings[key].items(), key=lambda item: (-item[1], len(item[0]), item[0]))[0] for key in chosen]
