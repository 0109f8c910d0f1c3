"""What a person does in the web app, step by step, found by accessible names in either UI
language: log in, register, open a page from the navigation (behind "Menu" on a phone),
write a record with a pasted image, and so on."""

from __future__ import annotations

import base64
import re
from typing import Any

from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.web.browser import sample_png

# The accessible names the tests use, per UI language (web_service/static/lib/i18n.js).
NAMES: dict[str, dict[str, str]] = {
    "en": {
        "username": "Username",
        "password": "Password",
        "login": "Log in",
        "to_register": "Create one",
        "register": "Create account",
        "register_heading": "Create an account",
        "menu": "Menu",
        "nav": "Main navigation",
        "timeline": "Timeline",
        "new": "New record",
        "search": "Search",
        "assistant": "Assistant",
        "memories": "Memories",
        "digests": "Digests",
        "trash": "Trash",
        "settings": "Settings",
        "admin": "Users",
        "logout": "Log out",
        "title": "Title",
        "content": "Text (Markdown)",
        "save": "Save",
        "files": "Files to upload",
        "attachments": "Attachments",
        "search_box": "Search",
        "new_conversation": "New conversation",
        "message": "Message",
        "send": "Send",
        "messages": "Messages",
        "sources": "Sources",
        "share": "Share",
        "share_address": "Public link address",
        "outbox": "Kept on this device",
    },
    "zh": {
        "username": "用户名",
        "password": "密码",
        "login": "登录",
        "to_register": "注册",
        "register": "创建账号",
        "register_heading": "创建账号",
        "menu": "菜单",
        "nav": "主导航",
        "timeline": "时间线",
        "new": "新记录",
        "search": "搜索",
        "assistant": "助手",
        "memories": "记忆",
        "digests": "摘要",
        "trash": "回收站",
        "settings": "设置",
        "admin": "用户管理",
        "logout": "退出登录",
        "title": "标题",
        "content": "正文（Markdown）",
        "save": "保存",
        "files": "待上传的文件",
        "attachments": "附件",
        "search_box": "搜索",
        "new_conversation": "新对话",
        "message": "消息",
        "send": "发送",
        "messages": "消息",
        "sources": "引用的记录",
        "share": "分享",
        "share_address": "公开链接地址",
        "outbox": "保存在本机",
    },
}


def lang_of(page: Page) -> str:
    """'zh' or 'en': the UI language the app shows now (`<html lang>`)."""
    return "zh" if (page.evaluate("() => document.documentElement.lang") or "").startswith("zh") else "en"


def name(page: Page, key: str) -> str:
    return NAMES[lang_of(page)][key]


def exact(text: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def settled(page: Page) -> None:
    """The view's heading is shown and nothing in <main> is still loading."""
    expect(heading(page)).to_be_visible()
    expect(page.locator("main .loading")).to_have_count(0)


def is_phone(page: Page) -> bool:
    size = page.viewport_size
    return bool(size and size["width"] < 700)


def nav(page: Page) -> Locator:
    return page.get_by_role("navigation", name=exact(name(page, "nav")))


def go(page: Page, key: str) -> None:
    """Open a page from the main navigation, as a person would (opening the menu on a phone)."""
    menu = page.get_by_role("button", name=exact(name(page, "menu")))
    if is_phone(page):
        expect(menu).to_be_visible()
        if menu.get_attribute("aria-expanded") != "true":
            menu.click()
    target = nav(page).get_by_role("button" if key == "logout" else "link", name=exact(name(page, key)))
    target.click()


# --- accounts ---


def log_in_ui(page: Page, username: str, password: str) -> None:
    page.goto("/#/login")
    expect(heading(page)).to_be_visible()
    page.get_by_label(name(page, "username"), exact=True).fill(username)
    page.get_by_label(name(page, "password"), exact=True).fill(password)
    page.get_by_role("button", name=exact(name(page, "login"))).click()


def register_ui(page: Page, username: str, password: str) -> None:
    """From the login page, as a new visitor: follow the link to register, fill the form."""
    page.goto("/")
    expect(heading(page)).to_have_text(exact(name(page, "login")))
    page.get_by_role("link", name=exact(name(page, "to_register"))).click()
    expect(heading(page)).to_have_text(exact(name(page, "register_heading")))
    page.get_by_label(name(page, "username"), exact=True).fill(username)
    page.get_by_label(name(page, "password"), exact=True).fill(password)
    page.get_by_role("button", name=exact(name(page, "register"))).click()


def log_in(context: BrowserContext, username: str, password: str) -> Page:
    """A new page of `context`, signed in through the login page, on the timeline. (The app
    tries its refresh cookie at start only when someone signed in on this device before, so
    a cookie from the API alone would not sign a fresh context in.)"""
    page = context.new_page()
    log_in_ui(page, username, password)
    expect_timeline(page)
    return page


def expect_signed_in(page: Page) -> None:
    """The signed-in frame: the navigation (behind the Menu button on a phone)."""
    if is_phone(page):
        expect(page.get_by_role("button", name=exact(name(page, "menu")))).to_be_visible()
    else:
        expect(nav(page)).to_be_visible()


def expect_timeline(page: Page) -> None:
    expect(page).to_have_url(re.compile(r"^[^#]*(#/(\?.*)?)?$"))
    settled(page)
    expect(heading(page)).to_have_text(exact(name(page, "timeline")))
    expect_signed_in(page)


def expect_login_page(page: Page) -> None:
    expect(page).to_have_url(re.compile(r"#/login"))
    expect(heading(page)).to_have_text(exact(name(page, "login")))


# --- records ---


def paste_image(target: Locator, png: bytes | None = None, filename: str = "clipboard.png") -> None:
    """A paste of an image file into `target`, as a browser's clipboard delivers it (a
    ClipboardEvent whose DataTransfer holds a File)."""
    data = base64.b64encode(png or sample_png()).decode()
    target.evaluate(
        """(element, [data, filename]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], filename, { type: 'image/png' }));
            element.focus();
            const paste = new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true, cancelable: true });
            element.dispatchEvent(paste);
        }""",
        [data, filename],
    )


def card(page: Page, text: str) -> Locator:
    """The record card (an <article>) that shows `text`."""
    return page.locator("main article").filter(has_text=text)


def image_loaded(image: Locator) -> bool:
    return bool(image.evaluate("(img) => img.complete && img.naturalWidth > 0"))


def no_dialogs(where: BrowserContext | Page, seen: list[Any]) -> None:
    """Record (and dismiss) every alert/confirm/prompt opened in `where` into `seen`."""

    def on_dialog(dialog: Any) -> None:
        seen.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    where.on("dialog", on_dialog)
