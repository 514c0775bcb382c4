"""Framings x sampling defaults for a base model: Swahili accuracy and long-answer health.

    python benchmarks/swahili_framing.py [--model gemma3-270m] [--framings NAME ...]
                                         [--sampling NAME ...] [--show]

For every framing (worked examples, header line, system prompt, stop strings) and every
sampling setting (temperature, top-p, repetition penalty, no-repeat n-gram), prints one row:
accuracy on the 50 questions of tests/data/swahili_qa.json (scored as benchmarks/swahili_qa.py
does), then, over 5 requests for an explanation or a story, how many answers have at least two
sentences, how many are cut by a loop (the engine's repetition guard, or fewer than half of
the word trigrams distinct), and the mean answer length in words. The framing the model card
ships is the row named `card`. Sampled settings run unseeded (a seeded request decodes alone, on a
freshly loaded generator: too slow for a grid), so their rows vary a little from run to run.

With --model smollm2-135m-instruct the framings are the model's own template with its default
system prompt in English, in Swahili, and none.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.swahili_qa import is_right, load_questions  # noqa: E402
from inference import builtin  # noqa: E402
from inference.engine import Engine, SamplingParams  # noqa: E402
from inference.registry import ModelStore  # noqa: E402

LONG_PROMPTS = [
    "Niandikie hadithi kuhusu sungura na kobe.",
    "Eleza faida za kunywa maji kila siku.",
    "Eleza jinsi ya kupanda mti wa mwembe.",
    "Niandikie barua kwa rafiki yangu nikimpongeza kwa kufaulu mtihani.",
    "Kwa nini watoto wanapaswa kwenda shule? Eleza.",
]

SHORT_EXAMPLES = builtin.GEMMA_BASE_EXAMPLES  # the shipped short examples
# Answers that restate the question: the model copies the subject, then has to add the fact.
SENTENCE_EXAMPLES = [
    ("Kuku hutaga nini?", "Kuku hutaga mayai."),
    ("Mji mkuu wa Ghana ni upi?", "Mji mkuu wa Ghana ni Accra."),
    ("Tano jumlisha sita ni ngapi?", "Tano jumlisha sita ni kumi na moja."),
    ("Neno la Kiingereza 'chair' kwa Kiswahili ni lipi?", "Neno 'chair' kwa Kiswahili ni kiti."),
    ("Kinyume cha neno 'safi' ni kipi?", "Kinyume cha 'safi' ni 'chafu'."),
    ("Mwalimu hufanya kazi wapi?", "Mwalimu hufanya kazi shuleni."),
    ("Wingi wa neno 'kiti' ni upi?", "Wingi wa 'kiti' ni 'viti'."),
]
# Requests for an explanation or a story, answered in two to four sentences on one line.
LONG_EXAMPLES = [
    ("Eleza kwa nini miti ni muhimu.",
     "Miti hutupa kivuli, matunda na mbao. Pia husafisha hewa na huzuia udongo kusombwa na mvua. "
     "Kwa hiyo ni vizuri kupanda miti mingi."),
    ("Niandikie hadithi fupi kuhusu paka na panya.",
     "Paka mmoja aliishi nyumbani kwa bibi mzee. Kila usiku alimwinda panya mjanja jikoni, lakini "
     "panya alijificha ndani ya kiatu. Mwishowe paka alichoka, na panya akaishi kwa amani."),
]


def interleave(short: list, long: list) -> list:
    """Long examples spread among the short ones (not all at the end: the last one weighs most)."""
    out = list(short)
    for i, example in enumerate(long):
        out.insert(min(len(out), 2 + i * 4), example)
    return out


def template(examples: list, header: str = "") -> str:
    head = f"{header}\n\n" if header else ""
    return (
        "{{ bos_token }}" + head
        + "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
        + "".join(f"Swali: {q}\nJibu: {a}\n\n" for q, a in examples)
        + "{% for m in messages if m.role != 'system' %}"
        "{% if m.role == 'user' %}Swali: {{ m.content }}\n"
        "{% else %}Jibu: {{ m.content }}\n\n{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}Jibu:{% endif %}"
    )


# Numbers as digits (number words bled into unrelated answers: "Kumi" for most questions).
DIGIT_EXAMPLES = [
    ("Kuku hutaga nini?", "Mayai."),
    ("Mji mkuu wa Ghana ni upi?", "Accra."),
    ("Tano jumlisha sita ni ngapi?", "11."),
    ("Neno la Kiingereza 'chair' kwa Kiswahili ni lipi?", "Kiti."),
    ("Kinyume cha neno 'safi' ni kipi?", "Chafu."),
    ("Mwalimu hufanya kazi wapi?", "Shuleni."),
    ("Wingi wa neno 'kiti' ni upi?", "Viti."),
]
# Answers opened by "Ni" ("It is"): one common word before the fact.
NI_EXAMPLES = [
    ("Kuku hutaga nini?", "Ni mayai."),
    ("Mji mkuu wa Ghana ni upi?", "Ni Accra."),
    ("Tano jumlisha sita ni ngapi?", "Ni 11."),
    ("Neno la Kiingereza 'chair' kwa Kiswahili ni lipi?", "Ni kiti."),
    ("Kinyume cha neno 'safi' ni kipi?", "Ni chafu."),
    ("Mwalimu hufanya kazi wapi?", "Ni shuleni."),
    ("Wingi wa neno 'kiti' ni upi?", "Ni viti."),
]
# The same examples in English: the model has read far more English question-answer text.
EN_EXAMPLES = [
    ("What do hens lay?", "Eggs."),
    ("What is the capital of Ghana?", "Accra."),
    ("What is five plus six?", "11."),
    ("What is the Swahili word for 'chair'?", "Kiti."),
    ("What is the opposite of 'clean'?", "Dirty."),
    ("Where does a teacher work?", "At school."),
    ("What is the plural of 'kiti'?", "Viti."),
]


def en_template(examples: list) -> str:
    return (
        "{{ bos_token }}"
        "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
        + "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in examples)
        + "{% for m in messages if m.role != 'system' %}"
        "{% if m.role == 'user' %}Question: {{ m.content }}\n"
        "{% else %}Answer: {{ m.content }}\n\n{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}Answer:{% endif %}"
    )


# Requests for a longer text: explanations, stories, letters (Swahili and English openers).
LONG_OPENERS = ("eleza", "elezea", "niandikie", "andika", "nieleze", "simulia", "nisimulie", "kwa nini", "fafanua",
                "write", "explain", "tell me", "describe", "why")
ROUTE_LONG_EXAMPLES = [
    ("Niandikie hadithi fupi kuhusu paka na panya.",
     "Paka mmoja aliishi nyumbani kwa bibi mzee. Kila usiku alimwinda panya mjanja jikoni, lakini panya "
     "alijificha ndani ya kiatu. Mwishowe paka alichoka, na panya akaishi kwa amani."),
    ("Eleza kwa nini miti ni muhimu.",
     "Miti hutupa kivuli, matunda na mbao. Pia husafisha hewa na huzuia udongo kusombwa na mvua. "
     "Kwa hiyo ni vizuri kupanda miti mingi."),
    ("Eleza jinsi ya kutunza baiskeli.",
     "Safisha baiskeli baada ya safari ya matope, kisha ipake mafuta kwenye mnyororo. Kagua upepo wa "
     "magurudumu kila wiki. Iweke mahali pakavu ili isipate kutu."),
]


def route_template(short: list, long: list, header: str = "") -> str:
    """Worked examples chosen by the kind of request: a question gets short answers to copy the
    length of, a request for an explanation or a story gets answers of two to four sentences."""
    head = f"{header}\n\n" if header else ""
    openers = "(" + ", ".join(f"'{o}'" for o in LONG_OPENERS) + ")"
    return (
        "{{ bos_token }}" + head
        + "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
        "{% set ns = namespace(long=false) %}"
        "{% for m in messages if m.role == 'user' %}"
        "{% set ns.long = (m.content | trim | lower).startswith(" + openers + ") %}{% endfor %}"
        "{% if ns.long %}" + "".join(f"Swali: {q}\nJibu: {a}\n\n" for q, a in long)
        + "{% else %}" + "".join(f"Swali: {q}\nJibu: {a}\n\n" for q, a in short) + "{% endif %}"
        "{% for m in messages if m.role != 'system' %}"
        "{% if m.role == 'user' %}Swali: {{ m.content }}\n"
        "{% else %}Jibu: {{ m.content }}\n\n{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}Jibu:{% endif %}"
    )


SYSTEM_SW = "Wewe ni PAWA, msaidizi anayejibu kwa Kiswahili sanifu kwa ufupi na usahihi."
HEADER = ("Haya ni maswali na majibu sahihi kwa Kiswahili. Swali la ukweli hujibiwa kwa sentensi "
          "moja; ombi la maelezo au hadithi hujibiwa kwa sentensi mbili hadi nne.")
OLD_STOP = ["\nSwali:", "Swali:", "\nJibu:", "\n\n\n"]
LINE_STOP = ["\nSwali:", "Swali:", "\nJibu:", "\n\n"]


def gemma_framings(card) -> dict[str, dict]:
    mixed = interleave(SENTENCE_EXAMPLES, LONG_EXAMPLES)
    return {
        "card": {"chat_template": card.chat_template, "stop": card.stop, "system": card.default_system_prompt},
        "card nosys": {"chat_template": card.chat_template, "stop": card.stop, "system": ""},
        "short14": {"chat_template": template(SHORT_EXAMPLES), "stop": OLD_STOP, "system": SYSTEM_SW},
        "short4": {"chat_template": template(SHORT_EXAMPLES[:4]), "stop": OLD_STOP, "system": SYSTEM_SW},
        "sent7": {"chat_template": template(SENTENCE_EXAMPLES), "stop": LINE_STOP, "system": SYSTEM_SW},
        "sent7+long2": {"chat_template": template(mixed), "stop": LINE_STOP, "system": SYSTEM_SW},
        "sent7+long2 nosys": {"chat_template": template(mixed), "stop": LINE_STOP, "system": ""},
        "sent7+long2 header": {"chat_template": template(mixed, HEADER), "stop": LINE_STOP, "system": SYSTEM_SW},
        "digits7": {"chat_template": template(DIGIT_EXAMPLES), "stop": OLD_STOP, "system": SYSTEM_SW},
        "ni7": {"chat_template": template(NI_EXAMPLES), "stop": OLD_STOP, "system": SYSTEM_SW},
        "en7": {"chat_template": en_template(EN_EXAMPLES), "stop": ["\nQuestion:", "Question:", "\nAnswer:", "\n\n\n"],
                "system": ""},
        "route short14": {"chat_template": route_template(SHORT_EXAMPLES, ROUTE_LONG_EXAMPLES), "stop": OLD_STOP,
                          "system": SYSTEM_SW},
        "route digits7": {"chat_template": route_template(DIGIT_EXAMPLES, ROUTE_LONG_EXAMPLES), "stop": OLD_STOP,
                          "system": SYSTEM_SW},
        "sent4+long2": {"chat_template": template(interleave(SENTENCE_EXAMPLES[:4], LONG_EXAMPLES)),
                        "stop": LINE_STOP, "system": SYSTEM_SW},
        "short7+long2": {"chat_template": template(interleave(SHORT_EXAMPLES[:7], LONG_EXAMPLES)),
                         "stop": LINE_STOP, "system": SYSTEM_SW},
    }


def instruct_framings(card) -> dict[str, dict]:
    return {
        "card (en)": {"chat_template": card.chat_template, "stop": card.stop, "system": card.default_system_prompt},
        "system sw": {"chat_template": card.chat_template, "stop": card.stop,
                      "system": "Wewe ni PAWA, msaidizi mwenye manufaa. Jibu kwa Kiswahili, kwa uwazi na kwa ufupi."},
        "no system": {"chat_template": card.chat_template, "stop": card.stop, "system": ""},
    }


SAMPLINGS = {
    "greedy rp1.1": {"temperature": 0.0, "repetition_penalty": 1.1},
    "greedy rp1.0": {"temperature": 0.0, "repetition_penalty": 1.0},
    "greedy rp1.0 nr3": {"temperature": 0.0, "repetition_penalty": 1.0, "no_repeat_ngram": 3},
    "t0.3 p0.9 rp1.0": {"temperature": 0.3, "top_p": 0.9, "repetition_penalty": 1.0},
    "t0.7 p0.95 rp1.1": {"temperature": 0.7, "top_p": 0.95, "repetition_penalty": 1.1},
}


class TrialEngine(Engine):
    """The engine with CTranslate2's no_repeat_ngram_size settable per trial."""

    no_repeat_ngram = 0

    def _decoding_options(self, params: SamplingParams) -> dict:
        options = super()._decoding_options(params)
        if self.no_repeat_ngram:
            options["no_repeat_ngram_size"] = self.no_repeat_ngram
        return options


def ask(engine: Engine, framing: dict, question: str, params: SamplingParams) -> tuple[str, str | None]:
    messages = [{"role": "system", "content": framing["system"]}] if framing["system"] else []
    messages.append({"role": "user", "content": question})
    prompt = engine.chat_prompt(messages, max_tokens=params.max_tokens)
    result = engine.generate(prompt, params).complete()
    return result.text, result.error


def sentences(text: str) -> int:
    return sum(1 for s in re.split(r"[.!?]+", text) if len(s.split()) >= 3)


def looped(text: str, error: str | None) -> bool:
    words = text.lower().split()
    grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    return error == "repetition" or (len(grams) >= 12 and len(set(grams)) < len(grams) / 2)


def trial(engine: TrialEngine, framing: dict, sampling: dict, questions: list[dict], *, show: bool,
          long_only: bool = False) -> dict:
    engine.card.chat_template, engine.card.stop = framing["chat_template"], list(framing["stop"])
    engine.no_repeat_ngram = sampling.get("no_repeat_ngram", 0)
    base = {k: v for k, v in sampling.items() if k != "no_repeat_ngram"}

    def short(q):
        return ask(engine, framing, q["q"], SamplingParams(**base, max_tokens=16))[0]

    def long(text):
        return ask(engine, framing, text, SamplingParams(**base, max_tokens=120))

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        answers = [] if long_only else list(pool.map(short, questions))
        longs = list(pool.map(long, LONG_PROMPTS))
    right = [is_right(a, q["answers"]) for q, a in zip(questions, answers, strict=False)]
    if show:
        for q, a, ok in zip(questions, answers, right, strict=False):
            print(f"    {'✓' if ok else '✗'} {q['q']} → {' '.join(a.split())[:70]}")
        for text, (answer, _error) in zip(LONG_PROMPTS, longs, strict=True):
            print(f"    » {text} → {' '.join(answer.split())[:300]}")
    return {
        "right": None if long_only else sum(right),
        "multi": sum(sentences(a) >= 2 for a, _e in longs),
        "loops": sum(looped(a, e) for a, e in longs),
        "words": sum(len(a.split()) for a, _e in longs) / len(longs),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", default=str(ROOT / "var" / "models"))
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--framings", nargs="*")
    parser.add_argument("--sampling", nargs="*")
    parser.add_argument("--pairs", nargs="*", help="framing|sampling pairs instead of the full grid")
    parser.add_argument("--long-only", action="store_true",
                        help="only the write/explain requests (for framings whose questions render as another's)")
    parser.add_argument("--show", action="store_true")
    args = parser.parse_args()

    questions = load_questions()
    store = ModelStore(args.models_dir)
    engine = TrialEngine(store.path(args.model), device="cpu")
    card = replace(engine.card)
    framings = (instruct_framings if card.kind == "instruct" else gemma_framings)(card)
    chosen_f = args.framings or list(framings)
    chosen_s = args.sampling or list(SAMPLINGS)
    print(f"{args.model}: {len(questions)} questions (max 16 tokens) + {len(LONG_PROMPTS)} write/explain "
          f"requests (max 120 tokens); compute {engine.compute_type}")
    print(f"{'framing':22} {'sampling':18} {'right':>6} {'≥2 sent':>8} {'loops':>6} {'words':>6} {'s':>5}")
    try:
        pairs = [tuple(p.split("|")) for p in args.pairs] if args.pairs else [
            (name, sname) for name in chosen_f for sname in chosen_s]
        for name, sname in pairs:
            if True:
                row = trial(engine, framings[name], SAMPLINGS[sname], questions, show=args.show,
                            long_only=args.long_only)
                right = "-" if row["right"] is None else f"{row['right']}/{len(questions)}"
                print(f"{name:22} {sname:18} {right:>6} {row['multi']:>6}/5 "
                      f"{row['loops']:>4}/5 {row['words']:>6.0f} {row['seconds']:>5.0f}", flush=True)
    finally:
        engine.close()


if __name__ == "__main__":
    main()
