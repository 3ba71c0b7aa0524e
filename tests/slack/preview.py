"""A small Block Kit renderer for looking at Honk's Slack messages as a phone shows them (a test helper).

`thread_html(messages)` turns messages (Block Kit JSON, as `app/slack/blocks.py` builds it) into one self-contained
HTML page: a 390 px wide phone screen showing a Slack thread, with inline CSS only (no script, font, image or any
other request). It knows the blocks Honk sends and a few more: `section` (mrkdwn or plain text, `fields`, a button
`accessory`), `context`, `actions` (buttons), `header` and `divider`. In mrkdwn it renders `*bold*`, `_italic_`,
`~strike~`, `` `code` ``, ```` ```blocks``` ````, `>` quotes, `<url|text>` links and `<@U…>`/`<#C…>`/`<!here>`
mentions, and reads Slack's `&amp;`/`&lt;`/`&gt;` as the characters they stand for.

It is not Slack: spacing and fonts are close, not equal. It is for checking that a message reads and fits on a
phone, and for the picture in the README.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PHONE_WIDTH = 390  # CSS pixels: an iPhone 12-15's screen

_TOKEN = re.compile(r"<([^<>|\n]+)(?:\|([^<>\n]*))?>")
_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])")
_SAFE_URL = re.compile(r"^(https?://|mailto:)", re.I)


@dataclass(frozen=True)
class Post:
    """One message in the thread: who, when, and its Block Kit `blocks` (or plain `text` when it has none)."""

    author: str
    time: str
    blocks: Sequence[dict[str, Any]] = ()
    text: str = ""
    app: bool = False  # shows the APP badge beside the name
    edited: bool = False
    users: dict[str, str] = field(default_factory=dict)  # Slack user id -> the name a mention shows


def slack_text(text: str) -> str:
    """Slack's escaped text (`&amp;`, `&lt;`, `&gt;`) as plain characters."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mrkdwn(text: str, users: dict[str, str] | None = None) -> str:
    """Slack mrkdwn as HTML: quotes and code blocks by line, the rest inline."""
    out: list[str] = []
    fenced = re.split(r"```", text)
    for index, part in enumerate(fenced):
        if index % 2 == 1 and index < len(fenced) - 1:
            out.append(f'<pre class="code">{html.escape(slack_text(part.strip(chr(10))))}</pre>')
            continue
        lines = part.split("\n")
        quote: list[str] = []
        for line in lines:
            if line.startswith(">"):  # a quote; an escaped "&gt;" is a person's own ">" and stays text
                quote.append(_inline(line[1:], users))
                continue
            if quote:
                out.append(f'<blockquote>{"<br>".join(quote)}</blockquote>')
                quote = []
            out.append(_inline(line, users) + "<br>")
        if quote:
            out.append(f'<blockquote>{"<br>".join(quote)}</blockquote>')
    joined = "".join(out)
    return joined[:-4] if joined.endswith("<br>") else joined


def _inline(text: str, users: dict[str, str] | None) -> str:
    """One line: links and mentions first (their labels are not formatted), then code, bold, italic, strike."""
    pieces: list[str] = []
    at = 0
    for match in _TOKEN.finditer(text):
        pieces.append(_formatted(text[at:match.start()]))
        pieces.append(_token(match.group(1), match.group(2), users or {}))
        at = match.end()
    pieces.append(_formatted(text[at:]))
    return "".join(pieces)


def _token(target: str, label: str | None, users: dict[str, str]) -> str:
    if target.startswith("@"):
        name = users.get(target[1:], target[1:])
        return f'<span class="mention">@{html.escape(slack_text(label or name))}</span>'
    if target.startswith("#"):
        return f'<span class="mention">#{html.escape(slack_text(label or target[1:]))}</span>'
    if target.startswith("!"):
        return f'<span class="mention">@{html.escape(target[1:].split("^")[0])}</span>'
    url = slack_text(target)
    shown = html.escape(slack_text(label) if label else url)
    if not _SAFE_URL.match(url):
        return shown
    return f'<a href="{html.escape(url, quote=True)}">{shown}</a>'


def _formatted(text: str) -> str:
    """Plain mrkdwn without links: escaped for HTML, code spans kept out of the other formatting."""
    codes: list[str] = []

    def keep(match: re.Match[str]) -> str:
        codes.append(f"<code>{html.escape(slack_text(match.group(1)))}</code>")
        return f"\x00{len(codes) - 1}\x00"

    out = html.escape(slack_text(_CODE.sub(keep, text)), quote=False)
    out = _BOLD.sub(r"<b>\1</b>", out)
    out = _ITALIC.sub(r"<i>\1</i>", out)
    out = _STRIKE.sub(r"<s>\1</s>", out)
    return re.sub(r"\x00(\d+)\x00", lambda m: codes[int(m.group(1))], out)


def _text(obj: dict[str, Any] | None, users: dict[str, str]) -> str:
    if not obj:
        return ""
    if obj.get("type") == "mrkdwn":
        return mrkdwn(str(obj.get("text", "")), users)
    return html.escape(str(obj.get("text", ""))).replace("\n", "<br>")


def _button(element: dict[str, Any]) -> str:
    style = element.get("style")
    classes = "button" + (f" {style}" if style in ("primary", "danger") else "")
    label = html.escape(str((element.get("text") or {}).get("text", "")))
    url = element.get("url")
    if isinstance(url, str) and _SAFE_URL.match(url):
        return f'<a class="{classes}" role="button" href="{html.escape(url, quote=True)}">{label}</a>'
    return f'<button class="{classes}" type="button">{label}</button>'


def block_html(block: dict[str, Any], users: dict[str, str] | None = None) -> str:
    """One block as HTML; an unknown type is shown as such rather than dropped."""
    users = users or {}
    kind = block.get("type")
    if kind == "section":
        body = f'<div class="text">{_text(block.get("text"), users)}</div>'
        if block.get("fields"):
            body += '<div class="fields">' + "".join(
                f"<div>{_text(f, users)}</div>" for f in block["fields"]) + "</div>"
        accessory = block.get("accessory")
        side = f'<div class="accessory">{_button(accessory)}</div>' if accessory and \
            accessory.get("type") == "button" else ""
        return f'<div class="block section">{body}{side}</div>'
    if kind == "context":
        parts = [_text(e, users) for e in block.get("elements", []) if e.get("type") in ("mrkdwn", "plain_text")]
        return f'<div class="block context">{" ".join(parts)}</div>'
    if kind == "actions":
        buttons = [_button(e) for e in block.get("elements", []) if e.get("type") == "button"]
        return f'<div class="block actions">{"".join(buttons)}</div>'
    if kind == "header":
        return f'<div class="block header">{_text(block.get("text"), users)}</div>'
    if kind == "divider":
        return '<hr class="block divider">'
    return f'<div class="block unknown">[{html.escape(str(kind))} block]</div>'


def _avatar(name: str, app: bool) -> str:
    initial = html.escape(name[:1].upper() or "?")
    return f'<div class="avatar{" app" if app else ""}" aria-hidden="true">{initial}</div>'


def post_html(post: Post) -> str:
    body = "".join(block_html(b, post.users) for b in post.blocks) if post.blocks else \
        f'<div class="block section"><div class="text">{mrkdwn(post.text, post.users)}</div></div>'
    badge = '<span class="badge">APP</span>' if post.app else ""
    edited = '<span class="edited">(edited)</span>' if post.edited else ""
    return (f'<article class="message">{_avatar(post.author, post.app)}<div class="content">'
            f'<div class="meta"><span class="author">{html.escape(post.author)}</span>{badge}'
            f'<span class="time">{html.escape(post.time)}</span>{edited}</div>{body}</div></article>')


def thread_html(root: Post, replies: Sequence[Post], *, channel: str = "widgets", title: str = "Thread") -> str:
    """A phone screen showing a thread: its first message, the count of replies, then each reply."""
    count = f"{len(replies)} repl{'y' if len(replies) == 1 else 'ies'}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width={PHONE_WIDTH}, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{html.escape(title)}</title>
<style>{_CSS}</style></head>
<body><main class="phone">
<header class="bar"><span class="back" aria-hidden="true">‹</span><div><div class="bar-title">Thread</div>
<div class="bar-sub">#{html.escape(channel)}</div></div></header>
<section class="thread">
{post_html(root)}
<div class="replies"><span>{count}</span></div>
{"".join(post_html(r) for r in replies)}
</section>
<footer class="composer"><div class="input">Reply…</div></footer>
</main></body></html>
"""


_CSS = f"""
* {{ box-sizing: border-box; }}
html, body {{ margin: 0; padding: 0; background: #fff; }}
body {{ font: 15px/1.4 "Lato", "Liberation Sans", "DejaVu Sans", system-ui, sans-serif,
  "Noto Color Emoji", "Apple Color Emoji", "Segoe UI Emoji"; color: #1d1c1d; }}
.phone {{ width: {PHONE_WIDTH}px; max-width: 100%; margin: 0; overflow: hidden; }}
.bar {{ display: flex; align-items: center; gap: 12px; padding: 10px 14px; background: #3f0e40; color: #fff; }}
.back {{ font-size: 28px; line-height: 1; }}
.bar-title {{ font-weight: 700; font-size: 16px; }}
.bar-sub {{ font-size: 13px; opacity: .8; }}
.thread {{ padding: 4px 0 8px; }}
.message {{ display: flex; gap: 10px; padding: 8px 14px; }}
.avatar {{ flex: 0 0 36px; height: 36px; border-radius: 6px; background: #2bac76; color: #fff; font-weight: 700;
  display: flex; align-items: center; justify-content: center; font-size: 17px; }}
.avatar.app {{ background: #1f2328; }}
.content {{ flex: 1 1 auto; min-width: 0; overflow-wrap: anywhere; }}
.meta {{ display: flex; align-items: baseline; gap: 6px; flex-wrap: wrap; }}
.author {{ font-weight: 900; }}
.badge {{ font-size: 10px; font-weight: 700; color: #616061; background: #e8e8e8; border-radius: 3px;
  padding: 0 3px; }}
.time, .edited {{ font-size: 12px; color: #616061; }}
.block {{ margin-top: 4px; }}
.section {{ display: flex; gap: 8px; align-items: flex-start; }}
.section .text {{ flex: 1 1 auto; min-width: 0; }}
.accessory {{ flex: 0 0 auto; }}
.fields {{ display: grid; grid-template-columns: 1fr 1fr; gap: 4px 12px; }}
.context {{ font-size: 12.5px; color: #616061; }}
.header {{ font-weight: 900; font-size: 17px; }}
.divider {{ border: 0; border-top: 1px solid #ddd; margin: 8px 0; }}
.actions {{ display: flex; flex-wrap: wrap; gap: 8px; margin-top: 8px; }}
.button {{ display: inline-block; font: inherit; font-size: 14px; font-weight: 700; padding: 6px 14px;
  min-height: 36px; border: 1px solid #bbb; border-radius: 6px; background: #fff; color: #1d1c1d;
  text-decoration: none; line-height: 22px; cursor: pointer; max-width: 100%; }}
.button.primary {{ background: #007a5a; border-color: #007a5a; color: #fff; }}
.button.danger {{ background: #e01e5a; border-color: #e01e5a; color: #fff; }}
a {{ color: #1264a3; text-decoration: none; }}
code {{ font: 12.5px "DejaVu Sans Mono", "Liberation Mono", monospace; color: #c01343; background: #f6f6f6;
  border: 1px solid #e1e1e1; border-radius: 3px; padding: 0 3px; }}
pre.code {{ font: 12.5px "DejaVu Sans Mono", monospace; background: #f8f8f8; border: 1px solid #e1e1e1;
  border-radius: 4px; padding: 6px; white-space: pre-wrap; margin: 4px 0; }}
blockquote {{ margin: 4px 0; padding-left: 10px; border-left: 4px solid #ddd; }}
.mention {{ color: #1264a3; background: #e8f5fa; border-radius: 3px; padding: 0 2px; }}
.replies {{ display: flex; align-items: center; gap: 10px; padding: 4px 14px; color: #616061; font-size: 13px; }}
.replies::after {{ content: ""; flex: 1; border-top: 1px solid #ddd; }}
.composer {{ padding: 10px 14px 16px; border-top: 1px solid #ddd; }}
.composer .input {{ border: 1px solid #bbb; border-radius: 8px; padding: 9px 12px; color: #868686; }}
"""
