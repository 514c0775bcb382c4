"""Request bodies of the OpenAI-compatible endpoints. Unknown fields and explicit nulls are accepted."""

import json
import re

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
    tool_calls = serializers.JSONField(required=False, allow_null=True)
    tool_call_id = serializers.CharField(required=False, allow_null=True, allow_blank=True)

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
        message = {"role": role, "content": text}
        if role == "assistant" and attrs.get("tool_calls"):
            message["tool_calls"] = _tool_calls(attrs["tool_calls"])
        if role == "tool":
            message["tool_call_id"] = attrs.get("tool_call_id") or ""
        return message


def _tool_calls(calls) -> list[dict]:
    """An assistant message's tool calls as [{"id", "name", "arguments"}] (arguments: JSON text)."""
    if not isinstance(calls, list):
        raise serializers.ValidationError({"tool_calls": "tool_calls must be a list."})
    normalized = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise serializers.ValidationError({"tool_calls": "Each tool call needs function.name and "
                                                             "function.arguments."})
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
        normalized.append({"id": str(call.get("id") or ""), "name": function["name"], "arguments": arguments})
    return normalized


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
    tools = serializers.JSONField(required=False, allow_null=True)
    tool_choice = serializers.JSONField(required=False, allow_null=True)
    parallel_tool_calls = serializers.BooleanField(required=False, allow_null=True)

    def validate_tools(self, value):
        """[{"name", "description", "parameters"}] from OpenAI's function tools; each parameters
        schema must be one the guidance can follow."""
        if not value:
            return []
        if not isinstance(value, list):
            raise serializers.ValidationError("tools must be a list of function tools.")
        tools = []
        for index, tool in enumerate(value):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
                raise serializers.ValidationError(f"tools[{index}]: only {{\"type\": \"function\", \"function\": "
                                                  f"{{…}}}} tools are supported.")
            name = function.get("name")
            if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
                raise serializers.ValidationError(f"tools[{index}]: function.name must be 1 to 64 letters, digits, "
                                                  f"underscores or dashes.")
            parameters = function.get("parameters") or {"type": "object", "properties": {}}
            try:
                Guide.json_schema(parameters)
            except InvalidParameter as exc:
                raise serializers.ValidationError(f"tools[{index}] ({name}): {exc}") from None
            tools.append({"name": name, "description": str(function.get("description") or ""),
                          "parameters": parameters})
        if len({tool["name"] for tool in tools}) != len(tools):
            raise serializers.ValidationError("Two tools have the same name.")
        return tools

    @staticmethod
    def _forced_tool(data: dict) -> dict | None:
        """The forced tool call: {"name": a function, or None when the model picks one of
        several, "schema": what the answer must follow}; None when the model answers freely."""
        choice, tools = data.get("tool_choice_resolved"), data.get("tools") or []
        if choice == "required":
            if len(tools) == 1:
                return {"name": tools[0]["name"], "schema": tools[0]["parameters"]}
            return {"name": None, "schema": {"anyOf": [
                {"type": "object", "properties": {"name": {"const": tool["name"]}, "arguments": tool["parameters"]},
                 "required": ["name", "arguments"], "additionalProperties": False} for tool in tools]}}
        if isinstance(choice, dict):
            tool = next(tool for tool in tools if tool["name"] == choice["name"])
            return {"name": tool["name"], "schema": tool["parameters"]}
        return None

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
        data = self.validated_data
        forced = data.get("forced_tool")
        schema = forced["schema"] if forced else data.get("response_format")
        logprobs = (data.get("top_logprobs") or 0) if data.get("logprobs") else None
        return {**super().sampling(), "json_schema": schema, "logprobs": logprobs}

    def validate(self, attrs):
        attrs = super().validate(attrs)
        attrs["tool_choice_resolved"] = self._tool_choice(attrs)
        attrs["forced_tool"] = self._forced_tool(attrs)
        if attrs.get("top_logprobs") and not attrs.get("logprobs"):
            raise serializers.ValidationError({"top_logprobs": "top_logprobs needs logprobs: true."})
        return attrs


    def _tool_choice(self, attrs):
        """"none", "auto", "required" or {"name": a function}."""
        choice, tools = attrs.get("tool_choice"), attrs.get("tools") or []
        if choice is None:
            return "auto" if tools else "none"
        if choice in ("none", "auto", "required"):
            if choice == "required" and not tools:
                raise serializers.ValidationError({"tool_choice": "tool_choice 'required' needs tools."})
            return choice
        function = choice.get("function") if isinstance(choice, dict) else None
        if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(function, dict):
            if not any(tool["name"] == function.get("name") for tool in tools):
                raise serializers.ValidationError({"tool_choice": f"tool_choice names {function.get('name')!r}, "
                                                                  "which is not in tools."})
            return {"name": function["name"]}
        raise serializers.ValidationError({"tool_choice": "tool_choice must be 'none', 'auto', 'required' or "
                                                          "{\"type\": \"function\", \"function\": {\"name\": …}}."})


class PawaChatRequestInput(ChatCompletionInput):
    """POST /v1/chat/request: PAWA's hosted API body. `memoryChat` holds earlier turns; they go
    after the system message(s) and before `messages`."""

    memoryChat = ChatMessage(many=True, required=False, allow_null=True)  # noqa: N815 - the hosted API's name

    def validate(self, attrs):
        attrs = super().validate(attrs)
        memory = attrs.pop("memoryChat", None) or []
        if memory:
            messages = attrs["messages"]
            system = [m for m in messages[:1] if m["role"] == "system"]
            attrs["messages"] = [*system, *[m for m in memory if m["role"] != "system"], *messages[len(system):]]
        return attrs


TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class CompletionInput(SamplingInput):
    prompt = serializers.JSONField()
    echo = serializers.BooleanField(required=False, allow_null=True)
    suffix = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    best_of = serializers.IntegerField(required=False, allow_null=True)
    logprobs = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=5)

    def sampling(self) -> dict:
        return {**super().sampling(), "logprobs": self.validated_data.get("logprobs")}

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
        return attrs
