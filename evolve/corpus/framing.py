"""The wrappers our builder puts around real text (documents, code, search results).

Real documentation and code are rarely pasted bare: people ask for a
summary, a review, a fix. The text inside is real (from the pinned packages);
the request around it is ours, and each row records which wrapper it got
(``framing``). Training and validation sources use set ``A``, evaluation
sources set ``B`` — disjoint phrasings, so a model cannot learn our wrappers
and score well on evaluation for it.
"""

from __future__ import annotations

from kosmoi.ids import stable_hash64

DOCUMENT: dict[str, tuple[str, ...]] = {
    "A": (
        "Summarize the following in three bullet points:\n\n{doc}",
        "Can you explain this to me like I'm new to the topic?\n\n{doc}",
        "{doc}\n\nWhat are the main points here?",
        "Rewrite this section so it reads better:\n{doc}",
        "Translate the following documentation into German:\n\n{doc}",
        'I found this in the docs but I don\'t get it. What does it mean?\n"""\n{doc}\n"""',
        "{doc}",
        "TL;DR please:\n{doc}",
        "Proofread this and fix any grammar mistakes:\n\n{doc}",
        "Turn this into a short FAQ:\n{doc}",
        "Here is part of a README. Write a one-paragraph description for our internal wiki.\n\n{doc}",
        "Make a list of action items from this text:\n{doc}",
    ),
    "B": (
        "Give me a short summary of this:\n\n{doc}",
        "{doc}\n\nExplain the above in simple terms.",
        "Please condense the text below into two sentences.\n---\n{doc}\n---",
        "Improve the wording of this passage without changing its meaning:\n{doc}",
        "Translate into Spanish:\n{doc}",
        "What is this documentation describing?\n\n{doc}",
        "{doc}",
        "Write five quiz questions based on this text:\n\n{doc}",
        "Can you check this for typos?\n{doc}",
        "Extract every command or function name mentioned here:\n{doc}",
        "Summarise for a manager who is not technical:\n\n{doc}",
        "I'm reading this, what should I take away from it?\n{doc}",
    ),
}

CODE: dict[str, tuple[str, ...]] = {
    "A": (
        "Can you explain what this function does?\n\n```python\n{code}\n```",
        "Add type hints and a docstring to this:\n```python\n{code}\n```",
        "```python\n{code}\n```\nHow would I write a unit test for this?",
        "Is there a bug in this code?\n\n{code}",
        "Refactor this to be more readable:\n```\n{code}\n```",
        "What's the time complexity of this?\n```python\n{code}\n```",
        "{code}",
        "Convert this Python to JavaScript:\n```python\n{code}\n```",
    ),
    "B": (
        "What does this code do? ```python\n{code}\n```",
        "Review this snippet and suggest improvements:\n\n```py\n{code}\n```",
        "```python\n{code}\n```\n\nwrite pytest tests for it",
        "Could you simplify this function?\n{code}",
        "Explain line by line:\n```python\n{code}\n```",
        "{code}\n\nwhy is this so slow?",
        "Port this to Go please\n```python\n{code}\n```",
        "{code}",
    ),
}

TRACEBACK: dict[str, tuple[str, ...]] = {
    "A": (
        "I get this error when I run my code:\n\n```\n{tb}\n```\n\nHere is the function:\n```python\n{code}\n```\nWhat's wrong?",
        "{tb}\n\nhow do I fix this?",
        "Getting {exc} from this:\n{code}\n\n{tb}",
    ),
    "B": (
        "Why am I seeing this traceback?\n```\n{tb}\n```\n```python\n{code}\n```",
        "help!!\n{tb}",
        "My function fails with:\n{tb}\nCode:\n{code}\nAny idea?",
    ),
}

SEARCH: dict[str, tuple[str, ...]] = {
    "A": (
        "Here are some search results:\n{results}\n\nBased on these, answer: {query}",
        "{results}\n\nUsing the sources above, {query}",
    ),
    "B": (
        'Search results for "{query}":\n{results}\n\nSummarise what they say.',
        "I looked this up and found:\n{results}\nWhich of these is most relevant to: {query}?",
    ),
}


def wrapper_set(split: str) -> str:
    """``A`` for training and validation sources, ``B`` for evaluation sources."""
    return "B" if split == "eval" else "A"


def choose(templates: dict[str, tuple[str, ...]], split: str, *key: object) -> tuple[str, str]:
    """(framing id, template) picked deterministically for ``key``."""
    group = wrapper_set(split)
    options = templates[group]
    index = stable_hash64("framing", *key) % len(options)
    return f"{group}{index}", options[index]
