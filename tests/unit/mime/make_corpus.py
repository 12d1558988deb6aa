#!/usr/bin/python3
"""Writes the MIME test corpus (tests/unit/mime/*.eml) byte-exactly.

The messages are kept here as Python strings so that line ends (CRLF, bare
LF, none) and 8-bit bytes are explicit.  Run it from anywhere; it writes
next to itself.  tests/unit/test_mime.c and test_imap_body.c hold the
expected ENVELOPE / BODYSTRUCTURE for each file.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def crlf(s):
    return s.replace("\n", "\r\n").encode("utf-8")


M = {}

M["simple"] = crlf("""\
Return-Path: <ignored@example.org>
Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)
From: Fred Foobar <foobar@Blurdybloop.COM>
Subject: afternoon meeting
To: mooch@owatagu.siam.edu
Message-Id: <B27397-0100000@Blurdybloop.COM>
MIME-Version: 1.0
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII

Hello Joe, do you think we can meet at 3:30 tomorrow?
""")

M["mixed_alternative"] = crlf("""\
From: "Alice Example" <alice@example.com>
To: Bob <bob@example.net>, carol@example.net
Cc: dave@example.org
Subject: Report
Date: Tue, 1 Oct 2024 10:00:00 +0000
Message-ID: <report-1@example.com>
In-Reply-To: <q-7@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

This is a multi-part message in MIME format.
--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hello Bob,
see the attachment.
--inner
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>Hello Bob,<br>see the attachment.</p>
--inner--

--outer
Content-Type: application/pdf; name="report.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="report.pdf"
Content-ID: <pdf-1@example.com>
Content-Description: The report

JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0
ZURlY29kZT4+CnN0cmVhbQo=
--outer--
""")

M["nested_related"] = crlf("""\
From: a@example.com
Subject: nested
Content-Type: multipart/mixed; boundary=L1

--L1
Content-Type: multipart/alternative; boundary=L2

--L2
Content-Type: text/plain

plain
--L2
Content-Type: multipart/related; boundary=L3; type="text/html"

--L3
Content-Type: text/html

<img src="cid:i1">
--L3
Content-Type: image/png
Content-ID: <i1>
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--L3--
--L2--
--L1
Content-Type: text/plain; name=notes.txt
Content-Disposition: inline

notes
--L1--
""")

M["rfc822_part"] = crlf("""\
From: forwarder@example.com
To: someone@example.net
Subject: Fwd: original
Content-Type: multipart/mixed; boundary="fwd"

--fwd
Content-Type: text/plain

See below.
--fwd
Content-Type: message/rfc822
Content-Description: forwarded message

From: Original Sender <orig@example.org>
To: forwarder@example.com
Subject: original
Date: Wed, 2 Oct 2024 08:00:00 +0200
Message-ID: <orig-1@example.org>
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain

original text
--inner
Content-Type: text/html

<b>original</b>
--inner--

--fwd--
""")

M["missing_close"] = crlf("""\
Subject: missing close delimiter
Content-Type: multipart/mixed; boundary="b"

preamble
--b
Content-Type: text/plain

first
--b
Content-Type: text/plain

second, and the message just ends
""")

M["missing_boundary_param"] = crlf("""\
Subject: no boundary parameter
Content-Type: multipart/mixed

--whatever
Content-Type: text/plain

text
--whatever--
""")

M["boundary_inside_line"] = crlf("""\
Subject: boundary text inside lines
Content-Type: multipart/mixed; boundary="sep"

--sep
Content-Type: text/plain

this line mentions --sep in the middle
 --sep with a leading space is not a boundary either
--sep
Content-Type: text/plain

last
--sep--
""")

M["preamble_epilogue"] = crlf("""\
Subject: preamble and epilogue
Content-Type: multipart/mixed; boundary="pe"

This is the preamble.
It has two lines.
--pe

implicit text/plain part without headers
--pe--
This is the epilogue.
--pe
a boundary line in the epilogue is ignored
""")

M["encoded_words"] = crlf("""\
From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>
To: =?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>
Subject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=
 =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=
Content-Type: multipart/mixed; boundary=ew

--ew
Content-Type: application/octet-stream; name="=?UTF-8?B?w6TDtsO8LmJpbg==?="
Content-Disposition: attachment; filename="=?UTF-8?B?w6TDtsO8LmJpbg==?="

data
--ew--
""")

M["raw_8bit_headers"] = crlf("""\
From: Jörg Müller <joerg@example.de>
To: "Ünïcödé" <u@example.de>
Subject: Grüße aus Köln
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Schöne Grüße
""")

M["folded_headers"] = crlf("""\
From: Folded
  Name <folded@example.com>
To: first@example.com,
	second@example.com,
 third@example.com
Subject: a subject that
 is folded over
	three lines
Message-ID:
 <folded@example.com>
Content-Type: text/plain;
 charset="iso-8859-1";
	format=flowed

body
""")

M["headers_only"] = crlf("""\
From: h@example.com
Subject: headers only, no empty line, no body""").rstrip(b"\r\n")

M["body_without_headers"] = crlf("""\

This message has no header at all.
Just a body.
""")

M["bare_lf"] = ("From: lf@example.com\n"
                "Subject: bare LF line ends\n"
                "Content-Type: multipart/alternative; boundary=\"lf\"\n"
                "\n"
                "--lf\n"
                "Content-Type: text/plain\n"
                "\n"
                "line one\n"
                "line two\n"
                "--lf\n"
                "Content-Type: text/html\n"
                "\n"
                "<p>html</p>\n"
                "--lf--\n").encode()

M["empty_parts"] = crlf("""\
Subject: empty parts
Content-Type: multipart/mixed; boundary="e"

--e
--e
Content-Type: text/html
--e

--e
Content-Type: application/octet-stream

--e--
""")

M["params"] = crlf("""\
Subject: parameters
Content-Type: text/plain; charset="UTF-8"; format=flowed (a comment);
 delsp="yes"; title*0*=us-ascii'en'This%20is%20even%20more%20;
 title*1*=%2A%2A%2Afun%2A%2A%2A%20; title*2="isn't it!"; lang*=utf-8''%C3%A4
Content-Disposition: Attachment; filename="a \\"quoted\\" name.txt";
 size=5; modification-date="Wed, 12 Feb 1997 16:29:51 -0500"
Content-Language: en-US, de (German)
Content-Location: http://www.example.com/some/very/long/
 path/file.txt
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==
Content-ID:   <id@example.com>  
Content-Description: parameter torture
Content-Transfer-Encoding: Quoted-Printable

hello
""")

M["groups"] = crlf("""\
From: Mary Smith <mary@x.test>
Sender: Secretary <sec@x.test>
Reply-To: "Mary (home)" <mary@home.test>
To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;
Cc: Undisclosed recipients:;
Bcc: "Joe Q. Public" <john.q.public@example.com>, <@route1,@route2:box@host.test>,
 pete(his account)@silly.test(his host), nodomain, @nolocal.test
Subject: groups and odd addresses
Date: Thu, 13 Feb 1969 23:32:54 -0330

body
""")

M["digest"] = crlf("""\
Subject: digest
Content-Type: multipart/digest; boundary="dg"

--dg

From: one@example.com
Subject: first digested

one
--dg
Content-Type: text/plain

not a message
--dg--
""")

M["top_level_rfc822"] = crlf("""\
Subject: outer
Content-Type: message/rfc822

Subject: inner
From: in@example.com
Content-Type: text/plain

inner body
""")

M["rfc822_in_rfc822"] = crlf("""\
Subject: level 0
Content-Type: multipart/mixed; boundary=x0

--x0
Content-Type: message/rfc822

Subject: level 1
Content-Type: message/rfc822

Subject: level 2
Content-Type: text/plain

deepest
--x0--
""")

M["invalid_content_type"] = crlf("""\
Subject: bad content type
Content-Type: garbage

text
""")

M["nested_same_boundary"] = crlf("""\
Subject: inner multipart reuses the outer boundary string as a prefix
Content-Type: multipart/mixed; boundary="ab"

--ab
Content-Type: multipart/alternative; boundary="abc"

--abc
Content-Type: text/plain

alt1
--abc--
--ab
Content-Type: text/plain

second
--ab--
""")

M["multipart_empty_body_part"] = crlf("""\
Subject: part with only a header
Content-Type: multipart/mixed; boundary=z

--z
Content-Type: text/plain; charset=us-ascii
--z--
""")

# Generated stress cases.
def deep(levels, fmt):
    b = lambda i: fmt % i
    out = "Subject: deep nesting\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n" % b(0)
    for i in range(1, levels):
        out += "--%s\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n" % (b(i - 1), b(i))
    out += "--%s\r\nContent-Type: text/plain\r\n\r\nleaf\r\n--%s--\r\n" % (b(levels - 1), b(levels - 1))
    for i in range(levels - 2, -1, -1):
        out += "--%s--\r\n" % b(i)
    return out.encode()

M["deep_nesting"] = deep(60, "=_d%02d_=")
# "d5" is a prefix of "d50".."d59": boundary lines match the wrong level
M["deep_prefix_boundaries"] = deep(60, "d%d")


def many(n):
    out = "Subject: many parts\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n"
    for i in range(n):
        out += "--m\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i
    out += "--m--\r\n"
    return out.encode()

M["many_parts"] = many(1500)

M["deep_rfc822"] = (b"Subject: r0\r\nContent-Type: message/rfc822\r\n\r\n" +
                    b"".join(b"Subject: r%d\r\nContent-Type: message/rfc822\r\n\r\n" % i
                             for i in range(1, 60)) +
                    b"Subject: end\r\n\r\nbottom\r\n")

for name, data in M.items():
    with open(os.path.join(HERE, name + ".eml"), "wb") as f:
        f.write(data)
