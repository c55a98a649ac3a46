"""A ``multipart/form-data`` body read into its text fields and files (the stdlib ``cgi`` module is
gone on Python 3.13; ``email`` parses each part's headers)."""

from __future__ import annotations

import email.message
import email.parser
import email.policy
from dataclasses import dataclass


@dataclass(frozen=True)
class FormFile:
    """A file sent in a form: its field's name, its file name, its declared content type, its bytes."""

    name: str
    """The form field's name (``image[]``, ``mask``)."""
    filename: str | None
    content_type: str
    data: bytes


@dataclass(frozen=True)
class MultipartForm:
    """A ``multipart/form-data`` body: text fields (the last of a repeated name wins) and files, in
    the order they came."""

    fields: dict[str, str]
    files: tuple[FormFile, ...]

    def files_named(self, *names: str) -> list[FormFile]:
        """The files sent under any of these field names, in order."""
        return [file for file in self.files if file.name in names]


def is_multipart(content_type: str | None) -> bool:
    return _content_type(content_type or "").get_content_type() == "multipart/form-data"


def read_form(content_type: str, body: bytes) -> MultipartForm:
    """The form in ``body``; ``ValueError`` when it is not a well-formed ``multipart/form-data``."""
    boundary = _content_type(content_type).get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("multipart/form-data without a boundary")
    fields: dict[str, str] = {}
    files: list[FormFile] = []
    # Each delimiter is CRLF "--boundary"; the first one may open the body without its CRLF.
    sections = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    closed = False
    for section in sections[1:]:
        if section.startswith(b"--"):  # the close delimiter: what follows is the epilogue
            closed = True
            break
        line_end = section.find(b"\r\n")  # the rest of the delimiter line (transport padding)
        if line_end < 0:
            raise ValueError("a form part without headers")
        head, separator, content = section[line_end:].partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a form part whose headers never end")
        headers = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(
            head.lstrip() + b"\r\n\r\n"
        )
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ValueError("a form part without a name")
        filename = headers.get_filename()
        if filename is not None or headers.get("content-type") is not None:
            files.append(FormFile(name, filename, headers.get_content_type(), content))
        else:
            fields[name] = content.decode("utf-8", "replace")
    if not closed:
        raise ValueError("a form without its close delimiter")
    return MultipartForm(fields, tuple(files))


def _content_type(value: str) -> email.message.Message:
    message = email.message.Message()
    message["Content-Type"] = value
    return message
