"""Security N10: names campaign members chose reach the administrators' chat as text,
never as markup (a Slack fence closed early, a Teams or Mattermost link)."""

from __future__ import annotations

import re

from isoloir.alerts.webhook import markdown_escape, markdown_fence, payload

LINK_NAME = "[Votre mot de passe expire](https://evil.example/login).csv"
FENCE_NAME = "a```\n*URGENT* <!channel> <https://evil.example|cliquez ici>\n```b.csv"
META = {"severity": "high", "fingerprint": "abc"}


def _render(template: str, name: str) -> dict:
    return payload(
        template,
        kind="alert",
        subject=f"[Isoloir] critique · {name}",
        body=f"Quoi : fichier public\nRessource : {name}\n",
        meta=META,
    )


def test_slack_shows_names_as_plain_text() -> None:
    for name in (LINK_NAME, FENCE_NAME):
        doc = _render("slack", name)
        # every block's text object is plain_text: Slack interprets no markup in it
        for block in doc["blocks"]:
            assert block["text"]["type"] == "plain_text"
        assert name in doc["blocks"][1]["text"]["text"]
        # the notification fallback is mrkdwn: no raw < or > left to open a link/mention
        assert "<" not in doc["text"] and ">" not in doc["text"]
    assert "&lt;!channel&gt;" in _render("slack", FENCE_NAME)["text"]


def test_teams_card_has_no_markdown_text_block() -> None:
    for name in (LINK_NAME, FENCE_NAME):
        card = _render("teams", name)["attachments"][0]["content"]
        texts = []
        for element in card["body"]:
            # TextBlock renders Markdown ([t](u) becomes a link); TextRun does not
            assert element["type"] == "RichTextBlock"
            for inline in element["inlines"]:
                assert inline["type"] == "TextRun"
                texts.append(inline["text"])
        assert any(name in t for t in texts)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def test_mattermost_heading_escaped_and_fence_unbreakable() -> None:
    doc = payload(
        "mattermost",
        kind="alert",
        subject=f"[Isoloir] critique · {LINK_NAME}",
        body=f"Ressource : {FENCE_NAME}\n",
        meta=META,
    )
    heading, _, rest = doc["text"].partition("\n")
    # no unescaped Markdown punctuation in the heading: the link stays text
    assert not re.search(r"(?<!\\)[\[\]()*_`<>]", heading.removeprefix("#### "))
    assert _unescape(heading) == f"#### [Isoloir] critique · {LINK_NAME}"
    lines = rest.split("\n")
    fence = lines[0]
    assert set(fence) == {"`"} and len(fence) > 3
    # only the last line closes the code block: the name inside cannot end it
    closing = [i for i, line in enumerate(lines) if i and line.strip().startswith(fence)]
    assert closing == [len(lines) - 1]
    assert FENCE_NAME in "\n".join(lines[1:-1])


def test_markdown_helpers() -> None:
    assert markdown_escape("[a](b)*c*_d_") == r"\[a\]\(b\)\*c\*\_d\_"
    assert markdown_fence("x") == "```\nx\n```"
    assert markdown_fence("a````b\n").startswith("`````\n")
