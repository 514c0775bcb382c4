"""Request bodies of the OpenAI-compatible endpoints. Unknown fields and explicit nulls are accepted."""

from rest_framework import serializers

from inference.errors import InvalidParameter
from inference.guided import Guide

MAX_STOP = 4


class StopField(serializers.JSONField):
    def to_internal_value(self, data):
        if data is None:
            return []
        if isinstance(data, str):
            return [data] if data else []
        if isinstance(data, list) and all(isinstance(s, str) for s in data) and len(data) <= MAX_STOP:
            return [s for s in data if s]
        raise serializers.ValidationError(f"stop must be a string or a list of at most {MAX_STOP} strings.")


class ChatMessage(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "developer", "user", "assistant", "tool"])
    content = serializers.JSONField(allow_null=True, required=False)
    name = serializers.CharField(required=False, allow_null=True, allow_blank=True)

    def validate(self, attrs):
        content = attrs.get("content")
        if content is None:
            text = ""
        elif isinstance(content, str):
            text = content
        elif isinstance(content, list):
            parts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise serializers.ValidationError({"content": "Only text content parts are supported."})
                parts.append(part["text"])
            text = "".join(parts)
        else:
            raise serializers.ValidationError({"content": "content must be a string or a list of text parts."})
        role = {"developer": "system"}.get(attrs["role"], attrs["role"])
        if role == "tool":
            raise serializers.ValidationError({"role": "Tool messages are not supported."})
        return {"role": role, "content": text}


class SamplingInput(serializers.Serializer):
    model = serializers.CharField()
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    top_k = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1000)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    stop = StopField(required=False, allow_null=True)
    seed = serializers.IntegerField(required=False, allow_null=True, min_value=-(2**63), max_value=2**64 - 1)
    n = serializers.IntegerField(required=False, allow_null=True)
    stream = serializers.BooleanField(required=False, allow_null=True, default=False)
    stream_options = serializers.DictField(required=False, allow_null=True)
    logit_bias = serializers.DictField(required=False, allow_null=True)
    user = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=256)
    presence_penalty = serializers.FloatField(required=False, allow_null=True, min_value=-2, max_value=2)
    frequency_penalty = serializers.FloatField(required=False, allow_null=True, min_value=-2, max_value=2)
    repetition_penalty = serializers.FloatField(required=False, allow_null=True, min_value=0.5, max_value=2)

    def validate_n(self, value):
        # One answer per request: each generation is its own stream, usage row and cancel
        # flag. Several requests sent at once are decoded together in one batch anyway.
        if value not in (None, 1):
            raise serializers.ValidationError("Only n=1 is supported: send one request per answer "
                                              "(requests sent at once run in one batch).")
        return value

    def validate_logit_bias(self, value):
        """{"token id": bias} with biases in -100..100 (the ids are checked against the model's
        vocabulary at admission)."""
        if not value:
            return {}
        bias = {}
        for key, number in value.items():
            if not str(key).isdigit():
                raise serializers.ValidationError(f"logit_bias keys must be token ids; got {key!r}.")
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not -100 <= number <= 100:
                raise serializers.ValidationError(f"logit_bias values must be numbers from -100 to 100; "
                                                  f"token {key} has {number!r}.")
            bias[int(key)] = float(number)
        return bias

    def validate(self, attrs):
        if attrs.get("stream_options") is not None and not attrs.get("stream"):
            raise serializers.ValidationError({"stream_options": "stream_options is only allowed with stream: true."})
        return attrs

    def sampling(self) -> dict:
        """OpenAI's parameters mapped to the engine's; None where the client chose nothing (the
        admission then applies the defaults the chat uses too)."""
        data = self.validated_data
        temperature, top_p = data.get("temperature"), data.get("top_p")
        if top_p == 0:
            temperature, top_p = 0.0, 1.0  # only the most likely token: greedy
        penalty = data.get("repetition_penalty")
        # CTranslate2 has one multiplicative repetition penalty: the stronger of OpenAI's two
        # additive penalties maps onto it, 0..2 → 1.0..2.0 and -2..0 → 0.5..1.0 (below 1
        # favours repeating, as a negative OpenAI penalty does).
        strongest = max(data.get("presence_penalty") or 0, data.get("frequency_penalty") or 0, key=abs)
        if penalty is None and strongest:
            penalty = 1.0 + (0.5 if strongest > 0 else 0.25) * strongest
        seed = data.get("seed")
        return {
            "temperature": temperature,
            "top_p": top_p,
            "top_k": data.get("top_k"),
            "repetition_penalty": penalty,
            "stop": data.get("stop") or [],
            "seed": None if seed is None else seed % 2**32,
            # A bias of -100 bans the token (CTranslate2 suppress_sequences); other biases
            # cannot be applied without a logits hook and are accepted and ignored.
            "suppress_tokens": sorted(t for t, b in (data.get("logit_bias") or {}).items() if b <= -100),
        }


class ChatCompletionInput(SamplingInput):
    messages = ChatMessage(many=True, allow_empty=False)
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    logprobs = serializers.BooleanField(required=False, allow_null=True)
    top_logprobs = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=20)
    response_format = serializers.JSONField(required=False, allow_null=True)

    def validate_response_format(self, value):
        """The JSON schema the answer must follow ({"type": "object"} for json_object), or None
        for plain text. A schema llguidance cannot express is refused here, naming the keywords."""
        if value is None:
            return None
        kind = value.get("type") if isinstance(value, dict) else None
        if kind == "text":
            return None
        if kind == "json_object":
            schema = {"type": "object"}
        elif kind == "json_schema":
            spec = value.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
                raise serializers.ValidationError("json_schema must be an object with the JSON schema in its "
                                                  "'schema' field.")
            schema = spec.get("schema") or {"type": "object"}
        else:
            raise serializers.ValidationError(f"Unsupported response_format type {kind!r}: use 'text', "
                                              "'json_object' or 'json_schema'.")
        try:
            return Guide.json_schema(schema).schema
        except InvalidParameter as exc:
            raise serializers.ValidationError(str(exc)) from None

    def sampling(self) -> dict:
        return {**super().sampling(), "json_schema": self.validated_data.get("response_format")}

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("logprobs"):
            raise serializers.ValidationError({"logprobs": "logprobs is not supported yet."})
        if attrs.get("top_logprobs") and not attrs.get("logprobs"):
            raise serializers.ValidationError({"top_logprobs": "top_logprobs needs logprobs: true."})
        return attrs


class CompletionInput(SamplingInput):
    prompt = serializers.JSONField()
    echo = serializers.BooleanField(required=False, allow_null=True)
    suffix = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    best_of = serializers.IntegerField(required=False, allow_null=True)
    logprobs = serializers.IntegerField(required=False, allow_null=True)

    def validate_prompt(self, value):
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            value = value[0]
        if not isinstance(value, str):
            raise serializers.ValidationError("prompt must be a string (or a list with one string).")
        if not value:
            raise serializers.ValidationError("prompt must not be empty.")
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("echo"):
            raise serializers.ValidationError({"echo": "echo is not supported."})
        if attrs.get("suffix"):
            raise serializers.ValidationError({"suffix": "suffix is not supported."})
        if attrs.get("best_of") not in (None, 1):
            raise serializers.ValidationError({"best_of": "Only best_of=1 is supported."})
        if attrs.get("logprobs") is not None:
            raise serializers.ValidationError({"logprobs": "logprobs is not supported."})
        return attrs
