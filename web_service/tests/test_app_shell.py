"""The installable app shell: the service worker precaches every file the app needs (one
missing file would fail its whole install, one forgotten file would break the app offline),
and the manifest names icons that exist at their stated sizes."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from web_service.app.web.assets import StaticBundle

STATIC = Path(__file__).resolve().parents[1] / "static"
# Relative module specifiers: `from './x.js'`, `import './x.js'`, `import('./x.js')`.
IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)(['"])(?P<path>\.{1,2}/[^'"]+)\1""")


def _served_worker() -> str:
    bundle = StaticBundle(STATIC)
    worker = bundle.entry_points["sw.js"]
    assert worker is not None
    return worker.body.decode("utf-8")


def _app_shell() -> list[str]:
    """The list the served worker precaches."""
    match = re.search(r"^const APP_SHELL = (?P<list>\[.*\]);$", _served_worker(), re.M)
    assert match, "sw.js: no `const APP_SHELL = __APP_SHELL__;` filled in"
    return json.loads(match["list"])


def test_the_service_worker_precaches_every_script_style_and_icon() -> None:
    shell = _app_shell()
    for path in shell:
        assert (STATIC / path).is_file(), path
    assert "app.js" in shell and "styles.css" in shell and "vendor/preact-htm.module.js" in shell
    assert "icons/icon.svg" in shell and not any(path.endswith(".png") for path in shell)
    assert "vendor/purify.min.js" in shell
    assert "sw.js" not in shell and not any(path.startswith("vendor/licenses/") for path in shell)
    scripts = {p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*.js") if p.name != "sw.js"}
    assert scripts <= set(shell)


def test_the_served_worker_names_its_version_and_assets() -> None:
    bundle = StaticBundle(STATIC)
    text = _served_worker()
    for placeholder in ("__ASSETS__", "__VERSION__", "__APP_SHELL__"):
        assert placeholder not in text, placeholder
    assert f"const VERSION = '{bundle.version}';" in text
    assert f"const ASSETS = '{bundle.prefix}';" in text


def test_every_module_the_app_imports_is_precached() -> None:
    shell = set(_app_shell())
    unresolved = []
    for path in STATIC.rglob("*.js"):
        if path.name == "sw.js" or "vendor" in path.parts:
            continue
        for match in IMPORT.finditer(path.read_text(encoding="utf-8")):
            target = (path.parent / match["path"]).resolve()
            relative = target.relative_to(STATIC).as_posix() if target.is_relative_to(STATIC) else str(target)
            if relative not in shell or not target.is_file():
                unresolved.append(f"{path.relative_to(STATIC)} imports {match['path']}")
    assert not unresolved, "\n".join(unresolved)


def test_the_page_asks_only_for_precached_assets() -> None:
    shell = set(_app_shell())
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    referenced = re.findall(r"__ASSETS__/([^\"'\s>]+)", page)
    assert "app.js" in referenced
    assert not sorted(set(referenced) - shell)


def test_the_service_worker_never_caches_the_api_and_versions_its_cache() -> None:
    text = (STATIC / "sw.js").read_text(encoding="utf-8")
    # /api/ is let through before any handler that could put a response in the cache.
    api_guard = text.index("url.pathname.startsWith('/api/')) return;")
    assert api_guard < text.index("event.respondWith(")
    # A new version is a new cache (the old one is dropped on activate).
    assert "const VERSION = '__VERSION__';" in text
    assert "const CACHE = `jilu-shell-${VERSION}`;" in text


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_manifest_names_icons_that_exist_at_their_sizes() -> None:
    manifest = json.loads((STATIC / "manifest.webmanifest").read_text(encoding="utf-8"))
    assert manifest["name"] == "记录 Jilu"
    assert manifest["short_name"] == "Jilu"
    assert manifest["start_url"] == "/" and manifest["scope"] == "/"
    assert manifest["display"] == "standalone"
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["theme_color"])
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["background_color"])
    sizes = set()
    for icon in manifest["icons"]:
        assert icon["src"].startswith("__ASSETS__/icons/"), icon
        path = STATIC / icon["src"].removeprefix("__ASSETS__/")
        assert path.is_file(), icon["src"]
        if icon["type"] == "image/png":
            width, height = _png_size(path)
            assert icon["sizes"] == f"{width}x{height}", icon
            sizes.add((width, icon.get("purpose", "any")))
    assert {(192, "any"), (512, "any"), (512, "maskable")} <= sizes
