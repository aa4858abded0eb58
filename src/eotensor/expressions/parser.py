"""Text → tree: a tokenizer and a Pratt parser for OTB's BandMath (muParser) and BandMathX (muParserX) syntax.

User text is never given to ``eval``: it is cut into tokens and parsed by precedence climbing into
:mod:`eotensor.expressions.nodes`. The precedences are muParser 2.3's as ``otbcli_BandMath`` 8.1 applies
them (checked against it; lowest first):

    ``?:`` (right) < ``and`` ``or`` (one level, left; OTB adds them at muParser's default priority 0)
    < ``||`` < ``&&`` < ``< > <= >= == !=`` (one level, left) < ``+ -`` < ``* /`` and unary ``- +``
    < ``^`` (right)

so ``-2^2`` is -4, ``2^3^2`` is 512 and ``1 || 0 and 0`` is 0. Unary signs do not repeat (``- -2`` is an
error in muParser too). BandMathX (muParserX) adds ``mult`` and ``div`` beside ``*`` and ``pow`` beside
``^``, row literals ``{a, b}``, the postfix transpose ``'``, and ``;`` between outputs. OTB 8.1 turns every
``;`` of a BandMathX expression into ``,`` (``otbBandMathImageFilterX``), so ``{1;1;1;1}`` is the same
1 x 4 row as ``{1,1,1,1}``; eotensor does the same inside brackets and splits outputs at the top level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eotensor.errors import ParameterError
from eotensor.expressions.functions import BANDMATH, BANDMATHX, DIALECTS, FUNCTIONS, suggest
from eotensor.expressions.nodes import BinOp, Call, Cond, Const, Node, Transpose, Unary, Var, Vector


class ExpressionError(ParameterError):
    """An expression that does not parse, names what does not exist, or cannot be evaluated (one line)."""


def fail(param: str, message: str, text: str | None = None, pos: int = 0) -> ExpressionError:
    """The one-line error ``param: message at column pos: text`` (the column and text when known)."""
    where = f" at column {pos}" if pos and text is not None else ""
    shown = f": {text}" if text is not None else ""
    return ExpressionError(f"{param}: {message}{where}{shown}")


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||<=|>=|==|!=|[-+*/^<>(),;?:{}'])
""", re.VERBOSE)

_CONSTANTS = {"_pi": 3.141592653589793, "_e": 2.718281828459045}
_WORD_OPERATORS = {"and": "&&", "or": "||"}  # BandMath only (OTB defines them for muParser)
_INFIX_WORDS = ("mult", "div", "pow")  # BandMathX only


@dataclass(frozen=True)
class Token:
    kind: str  # number, name, op, end
    text: str
    pos: int  # 1-based column


def tokenize(text: str, param: str = "exp") -> list[Token]:
    """The tokens of ``text`` followed by an ``end`` token; an unknown character is an error at its column."""
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        match = _TOKEN.match(text, index)
        if match is None:
            raise fail(param, f'unexpected character "{text[index]}"', text, index + 1)
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup, match.group(), index + 1))
        index = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


# Binding powers (higher binds tighter) and right-associativity, per dialect.
_TERNARY = 1
_BINARY = {
    "and": 2, "or": 2, "||": 3, "&&": 4,
    "<": 5, ">": 5, "<=": 5, ">=": 5, "==": 5, "!=": 5,
    "+": 6, "-": 6, "*": 7, "/": 7, "mult": 7, "div": 7, "^": 8, "pow": 8,
}
_RIGHT = ("^", "pow")
_UNARY = 7  # muParser's prINFIX: tighter than + -, looser than ^ (so -2^2 == -4)
_POSTFIX = 9


class _Parser:
    def __init__(self, text: str, dialect: str, param: str) -> None:
        self.text, self.dialect, self.param = text, dialect, param
        self.tokens = tokenize(text, param)
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def error(self, message: str, pos: int) -> ExpressionError:
        return fail(self.param, message, self.text, pos)

    def unexpected(self, token: Token) -> ExpressionError:
        if token.kind == "end":
            return self.error("unexpected end of expression", token.pos)
        return self.error(f'unexpected "{token.text}"', token.pos)

    def expect(self, text: str, opener: Token) -> None:
        if self.token.text == text and self.token.kind == "op":
            self.advance()
            return
        if self.token.kind == "end":
            raise self.error(f'missing "{text}" for the "{opener.text}"', opener.pos)
        raise self.unexpected(self.token)

    def infix(self, token: Token) -> str | None:
        """The binary operator ``token`` spells in this dialect, or None."""
        if token.kind == "op" and token.text in _BINARY:
            return token.text
        if token.kind == "name":
            if self.dialect == BANDMATH and token.text in _WORD_OPERATORS:
                return token.text
            if self.dialect == BANDMATHX and token.text in _INFIX_WORDS:
                return token.text
        return None

    def outputs(self) -> tuple[Node, ...]:
        outputs = [self.expression(0)]
        while self.dialect == BANDMATHX and self.token.kind == "op" and self.token.text == ";":
            self.advance()
            outputs.append(self.expression(0))
        if self.token.kind != "end":
            raise self.unexpected(self.token)
        return tuple(outputs)

    def expression(self, min_bp: int) -> Node:
        left = self.prefix()
        while True:
            token = self.token
            if token.kind == "op" and token.text == "'" and self.dialect == BANDMATHX:
                self.advance()
                left = Transpose(left, pos=token.pos)
                continue
            if token.kind == "op" and token.text == "?":
                if _TERNARY <= min_bp:
                    return left
                self.advance()
                then = self.expression(0)
                if not (self.token.kind == "op" and self.token.text == ":"):
                    raise self.unexpected(self.token) if self.token.kind != "end" else self.error(
                        'missing ":" for the "?"', token.pos)
                self.advance()
                other = self.expression(_TERNARY - 1)  # right-associative
                left = Cond(left, then, other, pos=token.pos)
                continue
            op = self.infix(token)
            if op is None:
                return left
            bp = _BINARY[op]
            if bp <= min_bp:
                return left
            self.advance()
            right = self.expression(bp - 1 if op in _RIGHT else bp)
            left = BinOp(_WORD_OPERATORS.get(op, op), left, right, pos=token.pos)

    def prefix(self) -> Node:
        token = self.advance()
        if token.kind == "number":
            return Const(float(token.text), pos=token.pos)
        if token.kind == "name":
            return self.name(token)
        if token.kind == "op" and token.text in ("-", "+"):
            if self.token.kind == "op" and self.token.text in ("-", "+"):
                raise self.unexpected(self.token)  # muParser refuses "- -2"
            return Unary(token.text, self.expression(_UNARY), pos=token.pos)
        if token.kind == "op" and token.text == "(":
            inner = self.expression(0)
            self.expect(")", token)
            return inner
        if token.kind == "op" and token.text == "{" and self.dialect == BANDMATHX:
            items = self.arguments(token, "}")
            if not items:
                raise self.error("a {...} row needs at least one value", token.pos)
            return Vector(items, pos=token.pos)
        raise self.unexpected(token)

    def arguments(self, opener: Token, closer: str) -> tuple[Node, ...]:
        """Comma- (or, as OTB reads them, semicolon-) separated expressions up to ``closer``."""
        items: list[Node] = []
        if self.token.kind == "op" and self.token.text == closer:
            self.advance()
        else:
            while True:
                items.append(self.expression(0))
                if self.token.kind == "op" and (self.token.text == "," or (
                        self.token.text == ";" and self.dialect == BANDMATHX)):
                    self.advance()
                    continue
                self.expect(closer, opener)
                break
        return tuple(items)

    def name(self, token: Token) -> Node:
        name = token.text
        if self.token.kind == "op" and self.token.text == "(":
            opener = self.advance()
            args = self.arguments(opener, ")")
            function = FUNCTIONS.get(name)
            if function is None or self.dialect not in function.dialects:
                known = [n for n, f in FUNCTIONS.items() if self.dialect in f.dialects]
                raise self.error(f'unknown function "{name}"{suggest(name, known)}', token.pos)
            if len(args) < function.min_args or (function.max_args is not None and len(args) > function.max_args):
                raise self.error(f"{name} takes {function.arity()}, got {len(args)}", token.pos)
            return Call(name, args, pos=token.pos)
        if name in _CONSTANTS:
            return Const(_CONSTANTS[name], pos=token.pos)
        if self.infix(token) is not None or name in _WORD_OPERATORS or name in _INFIX_WORDS:
            raise self.unexpected(token)
        return Var(name, pos=token.pos)


def parse_outputs(text: str, dialect: str = BANDMATH, param: str = "exp") -> tuple[Node, ...]:
    """The trees of ``text``: one for BandMath, one per ``;``-separated output for BandMathX."""
    if dialect not in DIALECTS:
        raise ParameterError(f'dialect must be one of {", ".join(DIALECTS)}, got "{dialect}"')
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"{param}: the expression is empty")
    try:
        return _Parser(text, dialect, param).outputs()
    except RecursionError:
        raise ExpressionError(f"{param}: the expression is nested too deeply") from None
