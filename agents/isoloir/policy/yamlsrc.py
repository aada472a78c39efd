"""Read a YAML policy file into plain data, remembering the line of every field.

PyYAML's composer gives each node its position; we build the Python value
ourselves so that every mapping key and list item is tied to a line. Dates are
kept as the text the user wrote (the schema and the loader check them), so a
value never changes type between the file and the error message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

MAX_FILE_BYTES = 1_000_000


class SourceError(Exception):
    """The file cannot be read as YAML; carries the line when known."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class Source:
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int:
        """Line of the field, or of its nearest enclosing field that exists."""
        p = tuple(path)
        while p not in self.lines and p:
            p = p[:-1]
        return self.lines.get(p, 1)


_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_NULL_TAG = "tag:yaml.org,2002:null"


def _scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    if node.tag in (_BOOL_TAG, _INT_TAG, _FLOAT_TAG, _NULL_TAG):
        return loader.construct_object(node)
    # strings, timestamps and anything else: the text as written
    return str(node.value)


MAX_NODES = 100_000


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, src: Source) -> Any:
    if len(src.lines) > MAX_NODES:
        raise SourceError(node.start_mark.line + 1, f"more than {MAX_NODES} values (alias bomb?)")
    src.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        return _scalar(loader, node)
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, (*path, i), src) for i, item in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SourceError(key_node.start_mark.line + 1, "a key must be a plain name")
            key = str(key_node.value)
            if key in result:
                raise SourceError(key_node.start_mark.line + 1, f"{key}: duplicate key")
            src.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _convert(loader, value_node, (*path, key), src)
        return result
    raise SourceError(node.start_mark.line + 1, "unsupported YAML node")


def parse(text: str) -> Source:
    """Parse one YAML document. Raises SourceError with a line number."""
    if len(text) > MAX_FILE_BYTES:
        raise SourceError(1, f"file larger than {MAX_FILE_BYTES} bytes")
    src = Source(data=None)
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            raise SourceError(1, "the file is empty")
        src.data = _convert(loader, node, (), src)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise SourceError(line, f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SourceError(1, f"not valid YAML: {exc}") from None
    except RecursionError:
        raise SourceError(1, "the document is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    return src
