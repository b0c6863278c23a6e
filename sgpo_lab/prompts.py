"""Prompts for any task and tokenizer: plain text, or the model's own chat template.

    plain, autonomous:  "<question_prefix><question><answer_prefix>"            (world: "Q: <question>\\nA:")
    plain, guided:      "<card>\\n" + the autonomous prompt
    chat, autonomous:   the template applied to [user: <question>], with the generation prompt
    chat, guided:       the template applied to [user: <card>\\n\\n<question>], with the generation prompt

Either way the completion follows the prompt's last token, so the teacher (guided) and the student
(autonomous) score the same completion tokens, aligned position by position; only the context differs.
The card goes where the template puts the user's context (the user turn), so a template's default system
message is the same in both contexts. A rendered template that begins with the tokenizer's BOS text has it
removed, because ``encode_prompts`` adds the tokenizer's own special tokens: the ids are then exactly the
template's (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from transformers import PreTrainedTokenizerBase

from sgpo_lab.tasks.base import Problem, Task

PromptStyle = Literal["auto", "plain", "chat"]


class PromptError(ValueError):
    """A prompt style the tokenizer cannot serve."""


@dataclass
class Prompter:
    """Builds the autonomous prompt x and the guided prompt (x, s) of a problem for one tokenizer."""

    tokenizer: PreTrainedTokenizerBase
    style: Literal["plain", "chat"] = "plain"
    question_prefix: str = "Q: "
    answer_prefix: str = "\nA:"

    @classmethod
    def for_task(cls, task: Task, tokenizer: PreTrainedTokenizerBase, style: PromptStyle = "auto") -> Prompter:
        """``auto``: the chat template when the tokenizer has one, else plain text."""
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if style == "chat" and not has_template:
            raise PromptError("prompt_style=chat but the tokenizer has no chat template; expected a tokenizer "
                              "whose tokenizer_config.json holds chat_template, or prompt_style=plain")
        if style not in ("auto", "plain", "chat"):
            raise PromptError(f"unknown prompt style {style!r}; expected auto, plain or chat")
        resolved = "chat" if style == "chat" or (style == "auto" and has_template) else "plain"
        return cls(tokenizer, resolved, task.question_prefix, task.answer_prefix)

    def autonomous(self, question: str) -> str:
        """The prompt without a strategy: pi(. | x)."""
        if self.style == "chat":
            return self._chat(question)
        return f"{self.question_prefix}{question}{self.answer_prefix}"

    def guided(self, question: str, card: str) -> str:
        """The prompt with the card in context: pi(. | x, s). An empty card gives the autonomous prompt."""
        card = (card or "").strip()
        if not card:
            return self.autonomous(question)
        if self.style == "chat":
            return self._chat(f"{card}\n\n{question}")
        return f"{card}\n{self.autonomous(question)}"

    def of(self, problem: Problem, card: str | None = None) -> str:
        """The autonomous prompt of ``problem`` (``card`` None) or its guided prompt with ``card``."""
        return self.autonomous(problem.question) if card is None else self.guided(problem.question, card)

    def _chat(self, user: str) -> str:
        tok = self.tokenizer
        try:
            text = tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                           add_generation_prompt=True)
        except Exception as err:  # jinja raises its own types; the user needs one line
            raise PromptError(f"the tokenizer's chat template failed on a user turn: {err}; "
                              "expected a template that renders [user] with a generation prompt") from None
        bos = tok.bos_token
        if bos and text.startswith(bos) and _adds_bos(tok):
            text = text[len(bos):]
        return text


def _adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id
