"""Experiment configuration: YAML validated by pydantic.

Unknown keys are errors. Every error names the file, the field path and what
was expected, plus the line in the file::

    experiments/smoke.yaml: attackers.grunt.count: must be > 0, got -3 (line 12)

:func:`load_experiment` raises :class:`ConfigError` (a user mistake: the CLI
prints its message, never a traceback).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, Field, ValidationError, field_validator, model_validator

from attackers.backends import PROVIDERS
from attackers.base import ATTACKERS
from attackers.conversation import DEFAULT_STRATEGIES, STRATEGIES
from attackers.refine import MODEL_STRATEGIES
from kosmoi.registry import Ref, load_plugins
from kosmoi.settings import Settings
from kosmoi.types import Goal
from targets.conversation import SESSION_MAX_CHARS
from targets.court import CourtConfig
from targets.detectors import DEFAULT_PHONE_REGIONS, phone_detector
from targets.endpoint import EndpointConfig
from targets.input_guard import DEFAULT_STAGES
from targets.llm_victim import LLMVictimConfig
from targets.output_guard import BusinessPolicy
from targets.sentinels import SENTINELS, AuditorConfig, NetworkConfig
from targets.stack import DEFAULT_SENTINELS
from targets.stages import stage_names
from targets.victim import PROFILES
from targets.victims import VICTIMS

ATTACK_GOALS = tuple(goal.value for goal in Goal if goal is not Goal.NONE)


class ConfigError(ValueError):
    """A configuration the user must fix; the message says where and how."""


def _known(names: tuple[str, ...], name: str, kind: str) -> None:
    """Raise naming ``kind`` and listing the registered names when ``name`` is not one of them."""
    if name not in names:
        raise ValueError(f"unknown {kind} {name!r}; registered: {', '.join(names) or 'none'} (your own need their module in targets.plugins)")


_Strict = Settings

class GruntLLMConfig(_Strict):
    """A local model writing grunt attacks: an OpenAI-compatible server (vllm serve, llama.cpp) or an in-process vLLM engine."""

    backend: Literal["openai", "vllm"] = Field(default="openai", description="'openai': an OpenAI-compatible endpoint; 'vllm': vllm.LLM in a GPU Ray actor")
    base_url: str | None = Field(default=None, pattern=r"^https?://", description="endpoint for backend 'openai', e.g. http://localhost:8000/v1")
    model: str = Field(min_length=1)
    concurrency: int = Field(default=16, gt=0, le=1024, description="requests in flight per worker")
    max_tokens: int = Field(default=300, gt=0)
    temperature: float = Field(default=0.9, ge=0, le=2)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    num_gpus: float = Field(default=1.0, ge=0, description="GPUs for the in-process engine (backend 'vllm')")
    engine_args: dict[str, Any] = Field(default_factory=dict, description="extra vllm.LLM arguments (backend 'vllm'), e.g. {dtype: float16, max_model_len: 4096}")


class ConversationConfig(_Strict):
    """Multi-turn attacks: a share of the grunt campaigns hold conversations instead of sending single messages."""

    share: float = Field(default=0.0, ge=0, le=1, description="share of grunt campaigns whose attempts are conversations (0: none)")
    max_turns: int = Field(default=5, ge=2, le=50, description="most turns of one conversation")
    turn_gap_s: float = Field(default=4.0, gt=0, description="simulated seconds between the turns of a conversation")
    strategies: list[str] = Field(
        default_factory=lambda: list(DEFAULT_STRATEGIES), min_length=1, description="multi-turn strategies; each conversation campaign draws one (attackers.conversation.STRATEGIES)"
    )

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, value: list[str]) -> list[str]:
        for name in value:
            _known((*STRATEGIES.names(), *MODEL_STRATEGIES), name, "multi-turn strategy")
        return value


class GruntConfig(_Strict):
    """The grunt population: the offline mutation attacker, or a local LLM."""

    count: int = Field(default=200, gt=0, description="logical attackers (one campaign each)")
    attempts: int = Field(default=4, gt=0, le=10_000, description="attempts per campaign")
    generator: str = Field(default="mutator", description="a registered attacker kind: 'mutator' (offline) or 'llm' (a local model), or your own")
    llm: GruntLLMConfig | None = None
    max_depth: int = Field(default=3, ge=0, le=8, description="most mutation operators stacked on one attack")
    think_time_s: float = Field(default=20.0, gt=0, description="mean simulated seconds between attempts")
    goals: list[Literal[ATTACK_GOALS]] = Field(default_factory=lambda: list(ATTACK_GOALS), min_length=1)  # type: ignore[valid-type]
    shared_bandit: bool = Field(default=True, description="the mutators of one replica pool what works (one bandit per replica)")
    conversations: ConversationConfig = ConversationConfig()

    @property
    def uses_model(self) -> bool:
        """Whether a generation backend writes this population's attacks (its single messages, or turns of its conversations)."""
        return ATTACKERS.get(self.generator).uses_model or self.writes_conversations

    @property
    def writes_conversations(self) -> bool:
        """Whether some of its conversations are written by a model (the 'pair' and 'tap' strategies)."""
        return bool(self.conversations.share and set(self.conversations.strategies) & set(MODEL_STRATEGIES))

    @model_validator(mode="after")
    def _llm_needs_settings(self) -> GruntConfig:
        _known(ATTACKERS.names(), self.generator, "attacker kind")
        if self.writes_conversations and self.llm is None:
            written = ", ".join(sorted(set(self.conversations.strategies) & set(MODEL_STRATEGIES)))
            raise ValueError(f"conversations.strategies {written}: a model writes these conversations, so the grunts need an 'llm' section (backend, base_url, model)")
        if self.uses_model and self.llm is None:
            raise ValueError(f"generator {self.generator!r} needs an 'llm' section (backend, base_url, model)")
        if self.llm is not None and self.llm.backend == "openai" and not self.llm.base_url:
            raise ValueError("llm.base_url is required for backend 'openai' (e.g. http://localhost:8000/v1)")
        return self


class SniperProviderConfig(_Strict):
    provider: str = Field(description="a registered provider: 'anthropic' or 'openai'")
    model: str = Field(min_length=1)
    input_usd_per_mtok: float = Field(ge=0, description="price per million input tokens")
    output_usd_per_mtok: float = Field(ge=0, description="price per million output tokens")


    @field_validator("provider")
    @classmethod
    def _registered(cls, value: str) -> str:
        _known(PROVIDERS.names(), value, "sniper provider")
        return value


class SniperConfig(_Strict):
    """Frontier models writing attacks; paid, so every call goes through the budget ledger."""

    count: int = Field(default=0, ge=0)
    attempts: int = Field(default=2, gt=0, le=1_000)
    providers: list[SniperProviderConfig] = Field(default_factory=list)
    max_tokens: int = Field(default=400, gt=0)
    temperature: float = Field(default=0.9, ge=0, le=2)
    concurrency: int = Field(default=4, gt=0, le=256)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    think_time_s: float = Field(default=60.0, gt=0)
    goals: list[Literal[ATTACK_GOALS]] = Field(default_factory=lambda: list(ATTACK_GOALS), min_length=1)  # type: ignore[valid-type]
    strategy: str = Field(default="", description="'pair' or 'tap': every sniper attempt is a conversation the model writes turn by turn ('': single messages)")
    max_turns: int = Field(default=4, ge=2, le=20, description="most turns of a sniper conversation")

    @field_validator("strategy")
    @classmethod
    def _model_strategy(cls, value: str) -> str:
        if value:
            _known(MODEL_STRATEGIES, value, "model-written multi-turn strategy")
        return value

    @model_validator(mode="after")
    def _providers_when_used(self) -> SniperConfig:
        if self.count and not self.providers:
            raise ValueError("sniper campaigns need at least one entry in 'providers'")
        return self


class AttackersConfig(_Strict):
    grunt: GruntConfig = GruntConfig()
    sniper: SniperConfig = SniperConfig()


class CapsConfig(_Strict):
    attacks_per_day: int | None = Field(default=None, ge=0)
    attacks_per_hour: int | None = Field(default=None, ge=0)
    usd_per_day: float | None = Field(default=None, ge=0)


class BudgetConfig(_Strict):
    """Spending on paid models: the DEFCON level picks the caps; the ledger keeps them across runs and workers."""

    defcon: int = Field(default=5, ge=1, le=5, description="5 = peace (tight caps) ... 1 = active breach (uncapped)")
    ledger: str | None = Field(default=None, description="SQLite ledger path (default: IMMUNE_LEDGER_PATH, else the user data directory)")
    policy: dict[int, CapsConfig] = Field(default_factory=dict, description="replace the caps of DEFCON levels 1-5 (a missing cap is no cap)")

    @field_validator("policy")
    @classmethod
    def _levels(cls, value: dict[int, CapsConfig]) -> dict[int, CapsConfig]:
        bad = sorted(level for level in value if not 1 <= level <= 5)
        if bad:
            raise ValueError(f"DEFCON levels are 1..5, got {bad}")
        return value


class BenignConfig(_Strict):
    """Legitimate traffic mixed into every replica."""

    customers: int = Field(default=60, ge=0)
    vendors: int = Field(default=6, ge=0, le=8)
    employees: int = Field(default=8, ge=0)
    requests: int = Field(default=5, gt=0, le=10_000, description="requests per benign identity")
    think_time_s: float = Field(default=120.0, gt=0)
    hard_negative_rate: float = Field(default=0.1, ge=0, le=1)
    real_rate: float = Field(default=0.2, ge=0, le=1, description="share of customer requests that are real people's prompts (targets.traffic.real_prompts)")
    follow_ups: int = Field(default=0, ge=0, le=20, description="most follow-up turns after a customer's request (a conversation; 0: single messages)")
    turn_gap_s: float = Field(default=6.0, gt=0, description="simulated seconds between the turns of a benign conversation")


class PartConfig(_Strict):
    """A registered part (a guard stage, a sentinel) named in the file, with its options; a bare name is short for ``{name: NAME}``."""

    name: str = Field(min_length=1, max_length=100)
    options: dict[str, Any] = Field(default_factory=dict)

    def ref(self) -> Ref:
        return Ref(self.name, dict(self.options))


def _parts(value: Any) -> Any:
    if isinstance(value, list):
        return [{"name": item} if isinstance(item, str) else item for item in value]
    return value


Parts = Annotated[list[PartConfig], BeforeValidator(_parts)]  # registered parts, each a name or {name, options}


class InputGuardConfig(_Strict):
    enabled: bool = True
    max_bytes: int = Field(default=16 * 1024, gt=0)
    semantic: bool = Field(default=False, description="embedding-similarity stage for uncertain texts (needs the 'semantic' extra)")
    session_turns: int = Field(default=0, ge=0, le=32, description="also judge each turn of a conversation joined to its last N turns (0: each turn alone)")
    session_max_chars: int = Field(default=SESSION_MAX_CHARS, gt=0, le=64_000, description="... at most this many characters of the joined turns (the newest)")
    stages: Parts = Field(
        default_factory=lambda: [PartConfig(name=name) for name in DEFAULT_STAGES],
        min_length=1,
        description="the input guard's pipeline, in order (registered stages; 'semantic' is added after them when semantic is true)",
    )



class OutputGuardConfig(BusinessPolicy):
    """The output guard: the business limits (inherited from its own policy), PII regions, extra stages."""

    enabled: bool = True
    phone_regions: tuple[str, ...] = Field(default=DEFAULT_PHONE_REGIONS, min_length=1, description="ISO 3166 regions whose phone numbers are redacted")
    stages: Parts = Field(default_factory=list, description="extra output stages on the agent's reply, after the built-in checks")


    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        phone_detector(value)  # raises naming the unknown codes
        return value


class IdentityConfig(_Strict):
    enforce: bool = True
    token_ttl_s: float = Field(default=300.0, gt=0)
    key_rotation_s: float = Field(default=3600.0, gt=0)


class SentinelConfig(AuditorConfig):
    """The sentinels: the auditor's thresholds (inherited from its own settings), the network baselines, which run."""

    network: NetworkConfig = NetworkConfig()
    enabled: Parts = Field(
        default_factory=lambda: [PartConfig(name=ref.name) for ref in DEFAULT_SENTINELS], description="the sentinels that run, in order (registered names)"
    )



class TargetsConfig(_Strict):
    """The staging defense stack."""

    victim_profile: str = Field(default="typical", description="how capable and careful the simulated victim is (targets.victim.PROFILES)")
    llm_victim: LLMVictimConfig | None = None
    endpoint: EndpointConfig | None = Field(default=None, description="a deployed agent to attack over HTTP (the 'endpoint' victim)")
    rule_engine: Literal["auto", "hyperscan", "re2"] = "auto"
    rules: str = Field(default="builtin:baseline", description="rule set: builtin:NAME or a JSON file")
    input_guard: InputGuardConfig = InputGuardConfig()
    output_guard: OutputGuardConfig = OutputGuardConfig()
    identity: IdentityConfig = IdentityConfig()
    sentinels: SentinelConfig = SentinelConfig()
    court: CourtConfig = CourtConfig()
    victim: str | None = Field(default=None, description="a registered victim; default 'endpoint' or 'llm' when their settings are set, else 'simulated'")
    plugins: list[str] = Field(default_factory=list, description="modules to import that register your own guard stages, sentinels and victims")

    @field_validator("victim_profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in PROFILES:
            names = [repr(name) for name in PROFILES]
            raise ValueError(f"must be one of {', '.join(names[:-1])} or {names[-1]}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _registered_parts(self) -> TargetsConfig:
        load_plugins(self.plugins)
        for ref in self.input_guard.stages:
            _known(stage_names("input"), ref.name, "input guard stage")
        for ref in self.output_guard.stages:
            _known(stage_names("output"), ref.name, "output guard stage")
        for ref in self.sentinels.enabled:
            _known(SENTINELS.names(), ref.name, "sentinel")
        if self.victim is not None:
            _known(VICTIMS.names(), self.victim, "victim")
            if self.victim == "llm" and self.llm_victim is None:
                raise ValueError("victim 'llm' needs the llm_victim settings (base_url, model)")
            if self.victim == "endpoint" and self.endpoint is None:
                raise ValueError("victim 'endpoint' needs the endpoint settings (url, format)")
        return self


class SimulationConfig(_Strict):
    replicas: int = Field(default=4, gt=0, le=4096, description="independent staging copies; fixes the results, not the workers")
    arrival_window_s: float = Field(default=1800.0, gt=0, description="campaigns start uniformly within this span")
    window_s: float = Field(default=60.0, gt=0, description="sentinel window (simulated seconds)")
    segment_windows: int = Field(default=10, gt=0, description="windows per unit of work (progress, flush and commit granularity)")
    checkpoint_every: int = Field(default=1, ge=0, description="snapshot the replicas every N units of work (0: never; resume then re-simulates from the start)")


class TrackingConfig(_Strict):
    enabled: bool = True
    experiment: str = Field(default="kosmoi-immune", min_length=1)


class Experiment(_Strict):
    """One experiment file."""

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    seed: int = Field(default=0, ge=0, lt=2**63)
    simulation: SimulationConfig = SimulationConfig()
    attackers: AttackersConfig = AttackersConfig()
    benign: BenignConfig = BenignConfig()
    targets: TargetsConfig = TargetsConfig()
    budget: BudgetConfig = BudgetConfig()
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("name")
    @classmethod
    def _name_chars(cls, value: str) -> str:
        if not all(ch.isalnum() or ch in "-_." for ch in value):
            raise ValueError("may only contain letters, digits, '-', '_' and '.'")
        return value

    def config_hash(self) -> str:
        """Hash of everything that shapes results except the seed (16 hex digits)."""
        body = self.model_dump(mode="json", exclude={"seed", "description"})
        _drop_later_defaults(body)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def planned_episodes(self) -> tuple[int, int]:
        """(attack episodes, benign episodes) the run will produce."""
        grunt, sniper = self.attackers.grunt, self.attackers.sniper
        benign = self.benign
        identities = benign.customers + benign.vendors + benign.employees
        return grunt.count * grunt.attempts + sniper.count * sniper.attempts, identities * benign.requests


# Fields added after the first release enter the config hash only when set: experiments written
# before them keep their hash, hence their episode ids, and runs started before an upgrade resume.
_LATER_FIELDS = (
    "attackers.grunt.conversations",
    "attackers.sniper.strategy",
    "attackers.sniper.max_turns",
    "benign.follow_ups",
    "benign.turn_gap_s",
    "targets.input_guard.session_turns",
    "targets.input_guard.session_max_chars",
    "targets.victim",
    "targets.endpoint",
    "targets.plugins",
    "targets.input_guard.stages",
    "targets.output_guard.stages",
    "targets.sentinels.enabled",
    "targets.sentinels.network.forget_after_windows",
)


@functools.cache
def _section_defaults() -> dict[str, Any]:
    return {"targets": TargetsConfig().model_dump(mode="json"), "attackers": AttackersConfig().model_dump(mode="json"), "benign": BenignConfig().model_dump(mode="json")}


def _drop_later_defaults(body: dict[str, Any]) -> None:
    defaults = _section_defaults()
    for path in _LATER_FIELDS:
        *parents, leaf = path.split(".")
        node, default = body, defaults
        for part in parents:
            node, default = node.get(part, {}), default.get(part, {})
        if leaf in node and node[leaf] == default.get(leaf):
            del node[leaf]


# --- error formatting ----------------------------------------------------------


def _describe_input(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Experiment
    for part in path:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return None
    return model


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = f", got {_describe_input(error.get('input'))}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']}{got}"
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}{got}"
    if kind == "less_than":
        return f"must be < {ctx['lt']}{got}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}{got}"
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        loc = error["loc"]
        model = _model_at(tuple(loc[:-1]))
        allowed = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key{hint}; allowed here: {', '.join(allowed)}" if allowed else f"unknown key{hint}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer{got}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number{got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false{got}"
    if kind in ("string_type",):
        return f"must be a string{got}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}{got}"
    if kind in ("model_type", "dict_type"):
        return f"must be a mapping of settings{got}"
    if kind in ("list_type",):
        return f"must be a list{got}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s){got}"
    if kind == "string_too_short":
        return f"must not be empty{got}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if isinstance(error.get("input"), dict):
        got = ""  # a whole section: repeating it would not help
    if not message:
        return f"invalid value{got}"
    keep_case = len(message) > 1 and message[1].isupper()  # an acronym such as "DEFCON"
    return f"{message if keep_case else message[0].lower() + message[1:]}{got}"


def _line_of(node: yaml.Node | None, path: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``path`` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if match is None:
                key = next((k for k, _ in node.value if getattr(k, "value", None) == str(part)), None)
                return key.start_mark.line + 1 if key is not None else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def format_validation_error(exc: ValidationError, source: str, root: yaml.Node | None) -> str:
    """One line per problem: ``file: a.b.c: message (line N)``."""
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        where = ".".join(str(part) for part in loc) or "(top level)"
        line = _line_of(root, loc)
        suffix = f" (line {line})" if line else ""
        lines.append(f"{source}: {where}: {_message(dict(error))}{suffix}")
    return "\n".join(lines)


def parse_experiment(text: str, source: str) -> Experiment:
    """Validate an experiment from YAML text; ``source`` names it in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: not valid YAML: {problem}{where}") from None
    if raw is None:
        raise ConfigError(f"{source}: the file is empty; an experiment needs at least a 'name'")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level, got {type(raw).__name__}")
    try:
        return Experiment.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, root)) from None


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file."""
    source = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory, not an experiment file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror})") from None
    return parse_experiment(text, source)
