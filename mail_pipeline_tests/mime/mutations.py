"""Mutations of the corpus messages, a hypothesis strategy shared by the property tests.

Flipped, inserted and deleted bytes, truncation, duplicated boundary lines and spliced
header lines, applied one to six times to a corpus message.
"""

from __future__ import annotations

import re

from hypothesis import strategies as st

from mail_pipeline_tests.data.corpus_tools import CORPUS

#: Every non-empty corpus message.
SAMPLES = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml")) if p.stat().st_size > 0]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "boundary", "header"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "boundary":
            lines = [m.group(0) for m in re.finditer(rb"(?m)^--[^\r\n]*\r?\n", bytes(data))]
            if lines:
                line = draw(st.sampled_from(lines))
                data[pos:pos] = b"\r\n" + line * draw(st.integers(1, 3))
        else:
            field = draw(
                st.sampled_from(
                    [
                        b"Content-Type: multipart/mixed\r\n",
                        b'Content-Type: multipart/mixed; boundary=""\r\n',
                        b"Content-Transfer-Encoding: base64\r\n",
                        b"Content-Type: message/rfc822\r\n",
                        b'To: ,,;:<>"\r\n',
                        b"Date: Mon, 99 Foo 99999 99:99:99 +9999\r\n",
                        b"Subject: =?x-unknown?B?////?= =?utf-8?Q?=ZZ?=\r\n",
                        b"Content-Disposition: attachment; filename*0*=bogus'%ZZ\r\n",
                    ]
                )
            )
            data[pos:pos] = field
    return bytes(data)
