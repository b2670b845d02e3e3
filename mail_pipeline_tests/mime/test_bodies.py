"""Tests of mail_pipeline.mime.bodies: which leaves are bodies and which are attachments."""

from __future__ import annotations

from mail_pipeline.mime.bodies import Bodies, collect, first_charset
from mail_pipeline.mime.structure import Part


def _leaf(ctype: str, body: bytes, *headers: tuple[str, str]) -> Part:
    return Part([("content-type", ctype), *headers], ctype.split(";")[0], body, [], False)


def test_bodies_and_attachments_are_sorted_and_decoded() -> None:
    tree = Part(
        [],
        "multipart/mixed",
        b"",
        [
            _leaf("text/plain; charset=iso-8859-1", b"caf\xe9\r\n"),
            _leaf("text/html", b"<p>x</p>"),
            _leaf(
                "text/plain",
                b"aGk=",
                ("content-disposition", 'attachment; filename="a.txt"'),
                ("content-transfer-encoding", "base64"),
            ),
            _leaf("image/png", b"png", ("content-id", "<img1>")),
            _leaf("text/plain", b"named", ("content-disposition", "inline; filename=n.txt")),
        ],
        True,
    )
    out = Bodies()
    notes: list[str] = []
    collect(tree, None, out, notes)
    assert out.text == ["café\n"] and out.html == ["<p>x</p>"]
    assert [
        (a.filename, a.content_type, a.content, a.content_id, a.inline) for a in out.attachments
    ] == [
        ("a.txt", "text/plain", b"hi", None, False),
        (None, "image/png", b"png", "img1", True),
        ("n.txt", "text/plain", b"named", None, True),
    ]
    assert notes == []
    assert first_charset(tree) == "iso-8859-1"
    assert first_charset(_leaf("text/plain", b"")) is None
