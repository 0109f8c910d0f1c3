"""The web app's strings: every key in both languages, every key the code asks for defined."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "static"
ENTRY = re.compile(r"^\s*'(?P<key>[^']+)':\s*\[(?P<zh>'(?:[^'\\]|\\.)*'),\s*(?P<en>'(?:[^'\\]|\\.)*')\],?\s*$")
# t('key') and t("key"); template-literal keys (t(`kind.${kind}`)) are checked by their prefix.
USED = re.compile(r"""\bt\(\s*(['"])(?P<key>[^'"]+)\1""")
USED_PREFIX = re.compile(r"\bt\(\s*`(?P<prefix>[^`$]*)\$\{")


def _strings() -> dict[str, tuple[str, str]]:
    text = (STATIC / "lib" / "i18n.js").read_text(encoding="utf-8")
    body = text.split("const STRINGS = {", 1)[1].split("\n};", 1)[0]
    strings: dict[str, tuple[str, str]] = {}
    for line in body.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("//"):
            continue
        match = ENTRY.match(line)
        assert match, f"i18n.js: not a one-line ['zh', 'en'] entry: {line!r}"
        key = match["key"]
        assert key not in strings, f"i18n.js: {key!r} is defined twice"
        strings[key] = (match["zh"][1:-1], match["en"][1:-1])
    return strings


def _sources() -> list[Path]:
    return [p for p in STATIC.rglob("*.js") if "vendor" not in p.parts and p.name != "i18n.js"]


def test_every_string_has_both_languages() -> None:
    strings = _strings()
    assert len(strings) > 50
    for key, (zh, en) in strings.items():
        assert zh.strip() and en.strip(), f"{key!r} is missing a language"
        placeholders_zh = set(re.findall(r"\{(\w+)\}", zh))
        placeholders_en = set(re.findall(r"\{(\w+)\}", en))
        assert placeholders_zh == placeholders_en, f"{key!r}: placeholders differ between zh-CN and en"


def test_every_key_the_code_uses_is_defined() -> None:
    strings = _strings()
    missing = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for match in USED.finditer(text):
            if match["key"] not in strings:
                missing.append(f"{path.relative_to(STATIC)}: {match['key']}")
        for match in USED_PREFIX.finditer(text):
            if not any(key.startswith(match["prefix"]) for key in strings):
                missing.append(f"{path.relative_to(STATIC)}: {match['prefix']}…")
    assert not missing, "keys used but not in i18n.js:\n" + "\n".join(missing)
