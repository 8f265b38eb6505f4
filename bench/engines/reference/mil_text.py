"""Parser of the textual `model.mil` that compiled `.mlmodelc` folders carry.

Hand-written: coremltools has no reader for this text (it writes model.mil when compiling, and only Core ML reads it). The grammar
follows real compiled files:

    program(1.3)
    [buildInfo = dict<string, string>({{"coremlc-version", "3505.4.1"}})]
    {
        func main<ios18>(tensor<fp16, [1, 4, 96, 96]> sample, ...) [FlexibleShapeInformation = ...] {
            tensor<fp16, [320]> w = const()[name = string("w"), val = tensor<fp16, [320]>(BLOBFILE(
                path = string("@model_path/weights/weight.bin"), offset = uint64(64)))];
            (tensor<fp16, [..]> a, tensor<fp16, [..]> b) = split(axis = ax, num_splits = int32(2), x = x)[name = string("s")];
            tensor<fp16, [..]> c = concat(axis = ax, interleave = false_, values = (a, b))[name = string("c")];
        } -> (c);
    }

`program(1.0)` files spell scalars `tensor<string, []>("...")`, newer ones `string("...")`; both are
read. Literals are `type(payload)` with nested lists, `true` / `false`, decimal or C hex floats
(`-0x1.388p+13`), `inf` / `nan`, and `BLOBFILE(path = ..., offset = ...)` into a weight file.
Every syntax error is a `ModelFormatError` naming the file, the line and what was expected.

Hostile text is bounded before the work it would cause (values in `bench.limits`): a line longer
than `MIL_MAX_LINE_CHARS`, a statement (text between `;`, `{` and `}`) longer than
`MIL_MAX_STATEMENT_CHARS`, more tokens than the memory budget holds, an inline literal of more than
`MIL_MAX_LITERAL_ELEMENTS` elements, nesting deeper than `MIL_MAX_NESTING`, a dimension above
2^62 and a constant whose shape needs more bytes than the memory budget are refused, naming the line
(and the op, once its statement is reached). `parse_file` reads a file line by line, so a huge
file is refused without being read whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.engines.reference.graph import (
    MIL_DTYPES,
    Arg,
    Binding,
    Function,
    Operation,
    Program,
    Ref,
    TensorType,
    Value,
    default_mil_dtype,
)
from bench.errors import ModelFormatError
from bench.limits import (
    MAX_DIMENSION,
    MIL_MAX_LINE_CHARS,
    MIL_MAX_LITERAL_ELEMENTS,
    MIL_MAX_NESTING,
    MIL_MAX_STATEMENT_CHARS,
    MIL_TOKEN_BYTES,
    check_tensor,
    human_bytes,
    memory_budget,
)

#: Reads a blob: (path as written, offset, MIL dtype, shape) -> value.
BlobReader = Callable[[str, int, str, tuple[int, ...]], np.ndarray]

_TOKEN = re.compile(
    r"""
    [ \t\r\f]+ | //[^\n]*
  | ( "(?:[^"\\\n]|\\.)*"
    | [-+]?(?:
        0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][-+]?[0-9]+)?
      | (?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?
      | inf(?![\w.]) | nan(?![\w.])
      )
    | [A-Za-z_@][A-Za-z0-9_.@:/]*
    | ->
    | .
    )
    """,
    re.VERBOSE,
)

_NUMBER, _STRING, _NAME, _PUNCT, _BAD, _END = "number", "string", "name", "punct", "bad", "end"
_PUNCTS = frozenset("()[]{}<>,=;?") | {"->"}
_NUMBER_START = frozenset("0123456789+-.")
_SCALAR_TYPES = frozenset(MIL_DTYPES)
_ESCAPES = re.compile(r"\\(.)")


def _kind(text: str) -> str:
    if not text:
        return _END
    first = text[0]
    if first == '"':
        return _STRING
    if text in _PUNCTS:
        return _PUNCT
    if first in _NUMBER_START or text in ("inf", "nan"):
        return _NUMBER if len(text) > 1 or first.isdigit() else _BAD
    if first.isalpha() or first in "_@":
        return _NAME
    return _BAD


class _Token:
    """A token, built only where a parse step needs its kind or line (the hot paths use texts)."""

    __slots__ = ("kind", "line", "text")

    def __init__(self, kind: str, text: str, line: int):
        self.kind, self.text, self.line = kind, text, line

    def __repr__(self) -> str:  # used in error messages
        return "end of file" if self.kind == _END else repr(self.text)


def tokenize(text: str, source: str = "<model.mil>") -> list[_Token]:
    """Split MIL text into tokens, each with its kind and line number."""
    texts, lines = _split(text.split("\n"), source)
    return [_Token(_kind(t), t, line) for t, line in zip(texts, lines)]


def _split(text_lines: Iterable[str], source: str) -> tuple[list[str], list[int]]:
    """Token texts and their line numbers; the last token is "" (end of file).

    Refuses, before tokenizing them, a line over `MIL_MAX_LINE_CHARS`, a statement over
    `MIL_MAX_STATEMENT_CHARS` and more tokens than the memory budget holds.
    """
    # One C-level findall per line keeps tokenizing cheap on multi-megabyte files.
    texts: list[str] = []
    lines: list[int] = []
    findall = _TOKEN.findall
    max_tokens = memory_budget() // MIL_TOKEN_BYTES
    statement_chars, statement_line = 0, 1
    number = 0
    for number, line in enumerate(text_lines, 1):
        if len(line) > MIL_MAX_LINE_CHARS:
            raise ModelFormatError(
                f"{source}:{number}: line is longer than {MIL_MAX_LINE_CHARS} characters (the limit for model.mil)"
            )
        # A statement ends at ';', '{' or '}'; characters after the last one start the next.
        end = max(line.rfind(";"), line.rfind("{"), line.rfind("}"))
        if end >= 0:
            rest = line[end + 1 :]
            statement_chars, statement_line = len(rest), number if rest.strip() else number + 1
        else:
            statement_chars += len(line)
            if statement_chars > MIL_MAX_STATEMENT_CHARS:
                raise ModelFormatError(
                    f"{source}:{statement_line}: statement is longer than {MIL_MAX_STATEMENT_CHARS} characters "
                    "(the limit for one op or literal in model.mil)"
                )
        found = [t for t in findall(line) if t]
        if found:
            texts.extend(found)
            lines.extend([number] * len(found))
            if len(texts) > max_tokens:
                raise ModelFormatError(
                    f"{source}:{number}: more than {max_tokens} tokens would exceed the memory budget of "
                    f"{human_bytes(memory_budget())} (about {MIL_TOKEN_BYTES} bytes each)"
                )
    texts.append("")
    lines.append(max(number, 1))
    return texts, lines


def parse_program(text: str, source: str | Path = "<model.mil>", read_blob: BlobReader | None = None) -> Program:
    """Parse model.mil text into a `Program`; `read_blob` resolves `BLOBFILE(...)` literals."""
    return _Parser(text.split("\n"), str(source), read_blob).program()


def parse_file(path: str | Path, read_blob: BlobReader | None = None) -> Program:
    """Parse a model.mil file, reading it line by line (a line is never read past its limit)."""
    return _Parser(_file_lines(Path(path)), str(path), read_blob).program()


def _file_lines(path: Path) -> Iterator[str]:
    number, offset = 0, 0
    try:
        with open(path, "rb") as handle:
            while True:
                number += 1
                raw = handle.readline(4 * MIL_MAX_LINE_CHARS + 8)  # UTF-8: at most 4 bytes a character
                if not raw:
                    return
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    if len(raw) > 4 * MIL_MAX_LINE_CHARS:  # cut inside a character: too long anyway
                        line = raw[: error.start].decode("utf-8") + "…" * (MIL_MAX_LINE_CHARS + 1)
                    else:
                        raise ModelFormatError(
                            f"{path}:{number}: not UTF-8 text at byte {offset + error.start}"
                        ) from None
                offset += len(raw)
                yield line[:-1] if line.endswith("\n") else line
    except OSError as error:
        raise ModelFormatError(f"{path}: cannot read ({error.strerror})") from None


class _Parser:
    def __init__(self, text_lines: Iterable[str], source: str, read_blob: BlobReader | None):
        self.source = source
        self.texts, self.lines = _split(text_lines, source)
        self.last = len(self.texts) - 1
        # One more end-of-file token, so a one-token lookahead at the end never runs off the list.
        self.texts.append("")
        self.lines.append(self.lines[-1])
        self.pos = 0
        self.read_blob = read_blob
        self.depth = 0  # nesting of types and literals being parsed
        self.elements = 0  # elements of the inline literal being parsed
        self.op = ""  # "op 'name' (type)" of the statement being parsed, for error messages

    # -- token helpers -------------------------------------------------------------------------
    def token(self, index: int) -> _Token:
        index = min(index, self.last)
        text = self.texts[index]
        return _Token(_kind(text), text, self.lines[index])

    def peek(self, ahead: int = 0) -> _Token:
        return self.token(self.pos + ahead)

    def take(self) -> _Token:
        token = self.token(self.pos)
        if self.pos < self.last:
            self.pos += 1
        return token

    def error(self, expected: str, index: int | None = None) -> ModelFormatError:
        index = self.pos if index is None else index
        token = self.token(index)
        if token.kind == _BAD:
            return ModelFormatError(f"{self.source}:{token.line}: unexpected character {token.text!r}")
        if index > 0 and self.lines[index - 1] < token.line:
            # What is missing belongs at the end of the previous token's line.
            found = f"{token!r} on line {token.line}" if token.kind != _END else repr(token)
            return ModelFormatError(f"{self.source}:{self.lines[index - 1]}: expected {expected}, found {found}")
        return ModelFormatError(f"{self.source}:{token.line}: expected {expected}, found {token!r}")

    def at(self, text: str) -> bool:
        return self.texts[self.pos] == text

    def accept(self, text: str) -> bool:
        if self.texts[self.pos] == text:
            self.pos += 1
            return True
        return False

    def expect(self, text: str, what: str | None = None) -> None:
        if self.texts[self.pos] != text:
            raise self.error(what or repr(text))
        self.pos += 1

    def enter(self) -> None:
        """One level deeper into a type or literal; refused past `MIL_MAX_NESTING`."""
        self.depth += 1
        if self.depth > MIL_MAX_NESTING:
            raise ModelFormatError(
                f"{self.source}:{self.lines[self.pos]}: {self.op + ': ' if self.op else ''}nesting deeper than "
                f"{MIL_MAX_NESTING} levels"
            )

    def where(self, line: int) -> str:
        """`file:line: op 'x' (type)` prefix of an error inside the current statement."""
        return f"{self.source}:{line}: {self.op}" if self.op else f"{self.source}:{line}"

    def name(self, what: str = "a name") -> str:
        text = self.texts[self.pos]
        if _kind(text) != _NAME:
            raise self.error(what)
        self.pos += 1
        return text

    # -- program structure ---------------------------------------------------------------------
    def program(self) -> Program:
        self.expect("program", "'program(version)' at the start of the file")
        self.expect("(")
        parts = []
        while not self.at(")"):
            if _kind(self.texts[self.pos]) != _NUMBER:
                raise self.error("a version number")
            parts.append(self.take().text)
            self.accept(",")
        self.expect(")")
        version = ".".join(parts) if parts else ""
        attributes = self.attribute_block() if self.at("[") else {}
        self.expect("{", "'{' opening the program body")
        functions: dict[str, Function] = {}
        while not self.at("}"):
            function = self.function()
            functions[function.name] = function
        self.expect("}", "'}' closing the program")
        if self.peek().kind != _END:
            raise self.error("end of file after the program")
        if not functions:
            raise ModelFormatError(f"{self.source}: the program has no functions")
        return Program(version=version, functions=functions, metadata={}, attributes=attributes)

    def function(self) -> Function:
        self.expect("func", "'func' or '}'")
        name = self.name("a function name")
        self.expect("<", "'<opset>' after the function name")
        opset = self.name("an opset name (ios15 ... ios18, CoreML5 ... CoreML9)")
        self.expect(">")
        self.expect("(")
        inputs: list[Value] = []
        while not self.at(")"):
            vtype = self.value_type()
            inputs.append(Value(self.name("an input name"), vtype))
            if not self.accept(","):
                break
        self.expect(")", "',' or ')' in the function signature")
        attributes = self.attribute_block() if self.at("[") else {}
        self.expect("{", "'{' opening the function body")
        operations: list[Operation] = []
        defined = {v.name for v in inputs}
        while not self.at("}"):
            operations.append(self.statement(defined))
        self.expect("}")
        self.expect("->", "'-> (outputs)' after the function body")
        self.expect("(")
        outputs: list[str] = []
        while not self.at(")"):
            token = self.peek()
            output = self.name("an output name")
            if output not in defined:
                raise ModelFormatError(f"{self.source}:{token.line}: function output {output!r} is never defined")
            outputs.append(output)
            if not self.accept(","):
                break
        self.expect(")", "',' or ')' in the function outputs")
        self.accept(";")
        return Function(name, opset, tuple(inputs), operations, tuple(outputs), attributes)

    def statement(self, defined: set[str]) -> Operation:
        start = self.peek()
        outputs: list[Value] = []
        if self.accept("("):
            while True:
                vtype = self.value_type()
                outputs.append(Value(self.name("an output name"), vtype))
                if not self.accept(","):
                    break
            self.expect(")", "')' closing the list of outputs")
        else:
            vtype = self.value_type()
            outputs.append(Value(self.name("the name of the op's output"), vtype))
        self.expect("=", "'=' after the op's output")
        op_type = self.name("an op type")
        self.op = f"op {outputs[0].name!r} ({op_type})"
        self.expect("(", f"'(' after op type {op_type!r}")
        inputs: dict[str, Binding] = {}
        literal_dtypes: dict[str, str] = {}
        while not self.at(")"):
            param = self.name("a parameter name")
            self.expect("=", f"'=' after parameter {param!r}")
            if self.accept("("):
                args: list[Arg] = []
                while not self.at(")"):
                    args.append(self.argument(defined, literal_dtypes, f"{param}.{len(args)}"))
                    if not self.accept(","):
                        break
                self.expect(")", f"')' closing the values of {param!r}")
                inputs[param] = tuple(args)
            else:
                inputs[param] = self.argument(defined, literal_dtypes, param)
            if not self.accept(","):
                break
        self.expect(")", f"',' or ')' in the arguments of {op_type!r}")
        attributes: dict[str, Any] = {}
        if self.at("["):
            attributes = self.attribute_block(literal_dtypes)
        self.expect(";", "';' at the end of the op")
        name = attributes.pop("name", None)
        if name is None:  # unnamed ops are named after their first output
            name = outputs[0].name
        elif not isinstance(name, str):
            raise ModelFormatError(f"{self.source}:{start.line}: op name must be a string, got {name!r}")
        if op_type == "const" and "val" not in attributes:
            raise ModelFormatError(f"{self.source}:{start.line}: const {name!r} has no 'val' attribute")
        for value in outputs:
            defined.add(value.name)
        self.op = ""
        return Operation(op_type, name, inputs, tuple(outputs), attributes, literal_dtypes)

    def argument(self, defined: set[str], literal_dtypes: dict[str, str], key: str) -> Arg:
        token = self.peek()
        if token.kind == _NAME and self.peek(1).text not in ("(", "<"):
            self.pos += 1
            if token.text not in defined:
                raise ModelFormatError(f"{self.source}:{token.line}: {token.text!r} is used before it is defined")
            return Ref(token.text)
        value, dtype = self.typed_literal()
        if dtype != default_mil_dtype(value):
            literal_dtypes[key] = dtype
        return value

    def attribute_block(self, literal_dtypes: dict[str, str] | None = None) -> dict[str, Any]:
        self.expect("[")
        attributes: dict[str, Any] = {}
        while not self.at("]"):
            key = self.name("an attribute name")
            self.expect("=", f"'=' after attribute {key!r}")
            value, dtype = self.typed_literal()
            attributes[key] = value
            if key == "name" and isinstance(value, str) and self.op:
                self.op = f"op {value!r} ({self.op.rsplit('(', 1)[-1]}"
            if (
                literal_dtypes is not None
                and key not in ("name", "val")
                and not isinstance(value, dict)
                and dtype != default_mil_dtype(value)
            ):
                literal_dtypes[key] = dtype
            if not self.accept(","):
                break
        self.expect("]", "',' or ']' in the attributes")
        return attributes

    # -- types and literals --------------------------------------------------------------------
    def value_type(self) -> TensorType:
        vtype = self.type_expr()
        if not isinstance(vtype, TensorType):
            raise self.error("a tensor or scalar type")
        return vtype

    def type_expr(self) -> Any:
        self.enter()
        vtype = self._type_expr()
        self.depth -= 1  # not restored on errors: they end the parse
        return vtype

    def _type_expr(self) -> Any:
        line = self.lines[self.pos]
        word = self.name("a type")
        if word == "tensor":
            self.expect("<")
            dtype = self.scalar_type()
            self.expect(",")
            self.expect("[", "'[' opening the shape")
            dims: list[int | None] = []
            texts = self.texts
            while texts[self.pos] != "]":
                dim = texts[self.pos]
                if dim.isascii() and dim.isdigit():  # not str.isdigit alone: "²" is a digit to it
                    if len(dim) > 19 or int(dim) > MAX_DIMENSION:
                        raise ModelFormatError(f"{self.where(self.lines[self.pos])}: dimension {dim[:40]} is above 2^62")
                    dims.append(int(dim))
                elif dim == "?" or _kind(dim) == _NAME:
                    dims.append(None)
                else:
                    raise self.error("a dimension (integer or '?')")
                self.pos += 1
                if not self.accept(","):
                    break
            self.expect("]", "',' or ']' in the shape")
            self.expect(">")
            return TensorType(dtype, tuple(dims))
        if word in ("dict", "tuple", "list", "state"):
            self.expect("<")
            parts: list[Any] = []
            while not self.at(">"):
                if self.peek().kind == _NUMBER or self.at("?"):
                    parts.append(self.take().text)
                else:
                    parts.append(self.type_expr())
                if not self.accept(","):
                    break
            self.expect(">", f"'>' closing {word}<...>")
            return (word, tuple(parts))
        if word in _SCALAR_TYPES:
            return TensorType(word, ())
        raise ModelFormatError(f"{self.source}:{line}: unknown type {word!r}")

    def scalar_type(self) -> str:
        line = self.lines[self.pos]
        word = self.name("a data type")
        if word not in _SCALAR_TYPES:
            raise ModelFormatError(
                f"{self.source}:{line}: unknown data type {word!r}; expected one of {', '.join(sorted(_SCALAR_TYPES))}"
            )
        return word

    def typed_literal(self) -> tuple[Any, str]:
        """(value, MIL dtype) of `type(payload)`."""
        if self.depth == 0:
            self.elements = 0
        self.enter()
        literal = self._typed_literal()
        self.depth -= 1  # not restored on errors: they end the parse
        return literal

    def _typed_literal(self) -> tuple[Any, str]:
        start = self.peek()
        vtype = self.type_expr()
        self.expect("(", "'(' opening the literal")
        if isinstance(vtype, tuple):
            if vtype[0] == "dict":
                payload = self.raw_payload() if not self.at(")") else None
                self.expect(")", "')' closing the literal")
                return self.structured(vtype, payload), vtype[0]
            # tuple / list payloads (flexible-shape information) are kept as their raw text:
            # the engine does not use them and their payload syntax is not documented.
            return self.balanced_text(start), vtype[0]
        if self.at("BLOBFILE"):
            value = self.blobfile(vtype, start)
            self.expect(")", "')' closing the literal")
            return value, vtype.dtype
        payload = self.raw_payload()
        self.expect(")", "')' closing the literal")
        return self.to_value(vtype, payload, start), vtype.dtype

    def balanced_text(self, start: _Token) -> str:
        """The tokens up to the ')' that closes an already opened '(', joined with spaces."""
        depth, parts = 1, []
        while True:
            token = self.take()
            if token.kind == _END:
                raise ModelFormatError(f"{self.source}:{start.line}: literal opened here is never closed")
            if token.text in ("(", "[", "{") and token.kind == _PUNCT:
                depth += 1
            elif token.text in (")", "]", "}") and token.kind == _PUNCT:
                depth -= 1
                if depth == 0:
                    return " ".join(parts)
            parts.append(token.text)

    def number(self, text: str) -> int | float:
        try:
            return _number(text)
        except (ValueError, OverflowError) as error:
            raise ModelFormatError(f"{self.where(self.lines[self.pos])}: bad number {text[:40]!r} ({error})") from None

    def count_elements(self, count: int) -> None:
        self.elements += count
        if self.elements > MIL_MAX_LITERAL_ELEMENTS:
            raise ModelFormatError(
                f"{self.where(self.lines[self.pos])}: inline literal has more than {MIL_MAX_LITERAL_ELEMENTS} "
                "elements (the limit; large constants belong in weight.bin)"
            )

    def raw_payload(self) -> Any:
        text = self.texts[self.pos]
        kind = _kind(text)
        if kind == _NUMBER:
            self.pos += 1
            return self.number(text)
        if kind == _STRING:
            self.pos += 1
            return _unquote(text)
        if kind == _NAME:
            if text in ("true", "false") and self.texts[self.pos + 1] not in ("(", "<"):
                self.pos += 1
                return text == "true"
            return self.typed_literal()[0]
        if text == "[" or text == "{":
            close = "]" if text == "[" else "}"
            self.pos += 1
            self.enter()
            items = []
            texts = self.texts
            try:
                while texts[self.pos] != close:
                    item = texts[self.pos]
                    if texts[self.pos + 1] in (",", close) and _kind(item) == _NUMBER:
                        items.append(_number(item))  # fast path: a plain number
                        self.pos += 1
                    else:
                        items.append(self.raw_payload())
                    if not self.accept(","):
                        break
            except (ValueError, OverflowError) as error:
                raise ModelFormatError(
                    f"{self.where(self.lines[self.pos])}: bad number {texts[self.pos][:40]!r} ({error})"
                ) from None
            self.count_elements(len(items))
            self.expect(close, f"',' or '{close}' in a list literal")
            self.depth -= 1
            return items if close == "]" else tuple(items)
        raise self.error("a literal value")

    def blobfile(self, vtype: TensorType, start: _Token) -> np.ndarray:
        self.expect("BLOBFILE")
        self.expect("(")
        fields: dict[str, Any] = {}
        while not self.at(")"):
            key = self.name("'path' or 'offset'")
            self.expect("=")
            fields[key] = self.typed_literal()[0]
            if not self.accept(","):
                break
        self.expect(")", "')' closing BLOBFILE(...)")
        if "path" not in fields or "offset" not in fields:
            raise ModelFormatError(f"{self.source}:{start.line}: BLOBFILE needs both 'path' and 'offset'")
        if any(d is None for d in vtype.shape):
            raise ModelFormatError(f"{self.source}:{start.line}: a BLOBFILE constant needs a known shape")
        if self.read_blob is None:
            raise ModelFormatError(f"{self.source}:{start.line}: BLOBFILE literal but no weight folder to read it from")
        path, offset = fields["path"], np.asarray(fields["offset"])
        if not isinstance(path, str) or offset.shape != () or offset.dtype.kind not in "iu":
            raise ModelFormatError(f"{self.where(start.line)}: BLOBFILE needs a string path and an integer offset")
        check_tensor(vtype.shape, _bits(vtype.dtype), self.where(start.line), ModelFormatError)
        try:
            return self.read_blob(path, int(offset), vtype.dtype, tuple(vtype.shape))
        except ModelFormatError as error:
            raise ModelFormatError(f"{self.where(start.line)}: {error}") from None

    def to_value(self, vtype: TensorType, payload: Any, start: _Token) -> Any:
        dtype, shape = vtype.dtype, vtype.shape
        if dtype == "string":
            if shape == ():
                if not isinstance(payload, str):
                    raise ModelFormatError(f"{self.source}:{start.line}: expected a string literal, found {payload!r}")
                return payload
            try:
                if any(d is None for d in shape):
                    raise ValueError("unknown dimensions in a literal's type")
                return np.array(payload, dtype=object).reshape(shape)
            except (ValueError, TypeError) as error:
                raise ModelFormatError(
                    f"{self.where(start.line)}: literal does not fit type string{list(shape)} ({error})"
                ) from None
        np_dtype = MIL_DTYPES.get(dtype)
        if np_dtype is None:
            raise ModelFormatError(f"{self.source}:{start.line}: literals of type {dtype} are not supported")
        try:
            array = np.array(payload, dtype=np_dtype if np_dtype.kind != "f" else np.float64)
            if np_dtype.kind == "f":
                with np.errstate(over="ignore"):
                    array = array.astype(np_dtype)
            if any(d is None for d in shape):
                raise ValueError("unknown dimensions in a literal's type")
            return array.reshape(shape)
        except (ValueError, TypeError, OverflowError) as error:
            raise ModelFormatError(
                f"{self.where(start.line)}: literal does not fit type {dtype}{list(shape)} ({error})"
            ) from None

    @staticmethod
    def structured(vtype: tuple, payload: Any) -> Any:
        """dict / tuple / list literals (program and function attributes): plain Python values."""
        kind = vtype[0]
        if kind == "dict" and isinstance(payload, tuple):
            return {entry[0]: entry[1] for entry in payload if isinstance(entry, tuple) and len(entry) == 2}
        return payload


def _bits(dtype: str) -> int:
    """Bits per element of MIL `dtype` as the engine holds it (sub-byte types unpacked to bytes)."""
    np_dtype = MIL_DTYPES.get(dtype)
    return 8 * np_dtype.itemsize if np_dtype is not None and np_dtype != np.dtype(object) else 64


def _number(text: str) -> int | float:
    body = text.lstrip("+-")
    negative = text.startswith("-")
    if body in ("inf", "nan"):
        value = float(body)
        return -value if negative else value
    if body[:2] in ("0x", "0X"):
        if "p" in body or "P" in body or "." in body:
            value = float.fromhex(body)
        else:
            return -int(body, 16) if negative else int(body, 16)
        return -value if negative else value
    if "." in body or "e" in body or "E" in body:
        return float(text)
    return int(text)


def _unquote(text: str) -> str:
    return _ESCAPES.sub(lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text[1:-1])
