"""The prompt formats, in one place: the autonomous prompt, the guided prompt and the completion.

    autonomous:  "Q: <question>\\nA:"
    guided:      "<strategy card>\\nQ: <question>\\nA:"
    completion:  " <steps> #<answer>"   (the model then emits its end-of-sequence token)

The guided prompt is the autonomous prompt with the strategy card in front, so the two contexts
share the question and the completion token for token: the teacher and the student of SGPO's
distillation see the same completion, aligned position by position.
"""

from __future__ import annotations

QUESTION_PREFIX = "Q: "
ANSWER_PREFIX = "\nA:"


def autonomous_prompt(question: str) -> str:
    """The prompt without a strategy: pi(. | x)."""
    return f"{QUESTION_PREFIX}{question}{ANSWER_PREFIX}"


def guided_prompt(question: str, strategy: str) -> str:
    """The prompt with the strategy card in context: pi(. | x, s). An empty strategy gives the autonomous prompt."""
    strategy = strategy.strip()
    return f"{strategy}\n{autonomous_prompt(question)}" if strategy else autonomous_prompt(question)


def document(question: str, completion: str, strategy: str = "") -> str:
    """A full training document: prompt then completion (the tokenizer adds BOS and EOS)."""
    return guided_prompt(question, strategy) + completion
