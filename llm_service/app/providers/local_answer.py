"""The offline provider's answers: the sentences of the user's records that match the question.

Question words (jieba's search mode for Chinese, stems for English) are weighted by how rare
they are among the given records (IDF); each sentence scores the weights of the words it
contains. The best one to three sentences are quoted with their dates and cited, and a
memory that shares a word with the question is mentioned. Nothing else is claimed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llm_service.app.providers.base import ChatContext, Language, SourceRecord
from llm_service.app.providers.extractive import make_title
from llm_service.app.providers.text import (
    contains_key,
    sentences_of,
    split_sentences,
    trim_to_width,
    words,
)

MAX_QUOTES = 3
QUOTE_WIDTH = 160
RELATIVE_CUTOFF = 0.5  # a quote scores at least half the best one, or it is noise

OFFLINE_NOTE: dict[Language, str] = {
    "zh-CN": "（离线模式：未配置大语言模型，以下内容摘自你的记录）",
    "en": "(Offline mode: no language model is configured; this is quoted from your records.)",
}
NOTHING_FOUND: dict[Language, str] = {
    "zh-CN": "我在你的记录里没有找到相关内容。",
    "en": "I found nothing about that in your records.",
}
_FOUND: dict[Language, str] = {
    "zh-CN": "你的记录里有这些相关内容：",
    "en": "Here is what your records say:",
}
_MEMORY: dict[Language, str] = {
    "zh-CN": "另外，你之前告诉过我：{memory}",
    "en": "Also, you told me before: {memory}",
}
_SUGGEST: dict[Language, str] = {
    "zh-CN": "配置大语言模型后，我可以综合这些记录来回答。",
    "en": "With a language model configured, I could combine these records into an answer.",
}


@dataclass(frozen=True)
class Quote:
    record: SourceRecord
    sentence: str
    score: float
    position: int  # sentence index inside its record: ties go to the earlier one


@dataclass(frozen=True)
class Reply:
    """The answer as lines to stream, and the records it quoted (in order of first quote)."""

    lines: tuple[str, ...]
    citations: tuple[str, ...]


def compose(context: ChatContext) -> Reply:
    language = context.language
    keys = _question_keys(context)
    quotes = _best_quotes(context.records, keys)
    memory = _best_memory(context.memories, keys)
    lines = [OFFLINE_NOTE[language]]
    if not quotes:
        lines.append(NOTHING_FOUND[language])
        if memory:
            lines.append(_MEMORY[language].format(memory=memory))
        return Reply(tuple(lines), ())
    lines.append(_FOUND[language])
    named: set[str] = set()  # a record's title is given with its first quote only
    for index, quote in enumerate(quotes, start=1):
        lines.append(_quote_line(index, quote, language, with_title=quote.record.id not in named))
        named.add(quote.record.id)
    if memory:
        lines.append(_MEMORY[language].format(memory=memory))
    lines.append(_SUGGEST[language])
    citations = tuple(dict.fromkeys(quote.record.id for quote in quotes))
    return Reply(tuple(lines), citations)


def _question_keys(context: ChatContext) -> list[str]:
    """What the question is about; a follow-up without content words ("那它呢？") borrows the
    words of the user's previous turn."""
    keys = list(dict.fromkeys(w.key for w in words(context.question, search=True)))
    if not keys:
        for turn in reversed(context.history):
            if turn.role == "user":
                keys = list(dict.fromkeys(w.key for w in words(turn.content, search=True)))
                if keys:
                    break
    return keys


def _best_quotes(records: tuple[SourceRecord, ...], keys: list[str]) -> list[Quote]:
    if not keys or not records:
        return []
    documents = [_record_sentences(record) for record in records]
    weight = _idf(keys, documents)
    quotes: list[Quote] = []
    for record, sentences in zip(records, documents, strict=True):
        for position, (sentence, folded, stems) in enumerate(sentences):
            score = sum(weight[key] for key in keys if contains_key(folded, stems, key))
            if score > 0:
                quotes.append(Quote(record, sentence, score, position))
    if not quotes:
        return []
    order = {record.id: index for index, record in enumerate(records)}  # the retrieval's ranking
    quotes.sort(key=lambda q: (-round(q.score, 9), order[q.record.id], q.position))
    best = quotes[0].score
    chosen: list[Quote] = []
    for quote in quotes:
        if quote.score < best * RELATIVE_CUTOFF or len(chosen) == MAX_QUOTES:
            break
        if all(quote.sentence != other.sentence for other in chosen):
            chosen.append(quote)
    return chosen


def _record_sentences(record: SourceRecord) -> list[tuple[str, str, set[str]]]:
    """Each sentence of a record (its title first) with its folded text and word stems."""
    sentences = [record.title] if record.title else []
    sentences += sentences_of(record.content)
    return [(s, s.casefold(), {w.key for w in words(s)}) for s in dict.fromkeys(sentences) if s.strip()]


def _idf(keys: list[str], documents: list[list[tuple[str, str, set[str]]]]) -> dict[str, float]:
    total = len(documents)
    weight = {}
    for key in keys:
        frequency = sum(
            1 for sentences in documents if any(contains_key(folded, stems, key) for _, folded, stems in sentences)
        )
        weight[key] = math.log(1 + (total + 1) / (frequency + 0.5)) * (1 + min(len(key), 4) / 4)
    return weight


def _best_memory(memories: tuple[str, ...], keys: list[str]) -> str | None:
    best, best_score = None, 0
    for memory in memories:
        folded, stems = memory.casefold(), {w.key for w in words(memory)}
        score = sum(1 for key in keys if contains_key(folded, stems, key))
        if score > best_score:
            best, best_score = memory, score
    return best


def _quote_line(index: int, quote: Quote, language: Language, *, with_title: bool) -> str:
    record = quote.record
    date = record.occurred_at.strftime("%Y-%m-%d")
    title = make_title(record.content, record.title) if with_title else ""
    sentence = trim_to_width(" ".join(quote.sentence.split()), QUOTE_WIDTH)
    same = not title or split_sentences(title)[0].rstrip("。.…") in sentence
    if language == "zh-CN":
        source = date if same else f"{date}《{title}》"
        return f"{index}. {source}：「{sentence}」"
    source = date if same else f'{date}, "{title}"'
    return f"{index}. {source}: “{sentence}”"
