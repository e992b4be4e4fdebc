#!/usr/bin/env python3
"""Generate llmtel's built-in price catalog from LiteLLM's price table.

    scripts/gen_catalog.py [LITELLM_JSON] [--version V] [--date YYYY-MM-DD] [--out FILE]

Reads LiteLLM's model_prices_and_context_window.json (MIT licensed; the `litellm` wheel
carries it as litellm/model_prices_and_context_window_backup.json; default: the copy
shipped at crates/llmtel-pricing/tests/data/litellm_model_prices.json), keeps the
token-priced chat, completion, embedding and moderation models of the providers below,
converts their per-token prices to llmtel's TOML format (USD per million tokens, rounded
half to even at the pico-dollar per token, exactly as llmtel-pricing's
Catalog::from_litellm_json does), and writes crates/llmtel-pricing/data/catalog.toml:

  1. the hand-curated entries of crates/llmtel-pricing/data/curated.toml, verbatim (they
     carry price history and llmtel's ids and aliases, and win over LiteLLM's entry of
     the same id or alias);
  2. the generated entries, each priced from the LiteLLM version's release date.

Python 3.11+ standard library only.
"""

import argparse
import json
import re
import sys
import tomllib
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "crates/llmtel-pricing/data"
SHIPPED = ROOT / "crates/llmtel-pricing/tests/data/litellm_model_prices.json"
# The shipped copy: litellm 1.110.2, uploaded to PyPI on 2026-11-20.
DEFAULT_VERSION = "1.110.2"
DEFAULT_DATE = "2026-11-20"

# litellm_provider -> gen_ai.provider.name (same table as llmtel-pricing's
# provider_from_litellm), for the providers the built-in catalog covers.
PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "amazon_nova": "aws.bedrock",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "mistral": "mistral_ai",
    "codestral": "mistral_ai",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "groq": "groq",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "fireworks_ai-embedding-models": "fireworks",
    "perplexity": "perplexity",
}
KINDS = {None: "chat", "chat": "chat", "responses": "chat", "completion": "completion",
         "embedding": "embedding", "moderation": "moderation",
         "image_generation": "image_generation", "audio_speech": "audio_speech",
         "audio_transcription": "audio_transcription"}
UNIT_KINDS = ("image_generation", "audio_speech", "audio_transcription")
TIERED_FIELDS = ["input_cost_per_token", "output_cost_per_token",
                 "cache_read_input_token_cost", "cache_creation_input_token_cost"]
ABOVE = re.compile(r"^(%s)_above_(\d+)(k?)_tokens$" % "|".join(TIERED_FIELDS))
PICO = Decimal(10) ** 12


def provider_of(litellm_provider):
    if litellm_provider in PROVIDERS:
        return PROVIDERS[litellm_provider]
    if litellm_provider == "vertex_ai" or str(litellm_provider).startswith("vertex_ai-"):
        return "gcp.vertex_ai"
    return None


def picos(usd_per_token):
    """USD per token (float) -> pico-dollars per token: shortest repr, half to even."""
    if isinstance(usd_per_token, bool) or not isinstance(usd_per_token, (int, float)):
        raise ValueError(f"not a number: {usd_per_token!r}")
    if usd_per_token < 0:
        raise ValueError(f"negative price {usd_per_token!r}")
    return int((Decimal(repr(float(usd_per_token))) * PICO).to_integral_value(ROUND_HALF_EVEN))


def per_million(p):
    """Pico-dollars per token -> USD per million tokens, as a TOML number literal."""
    text = format(Decimal(p) / Decimal(10**6), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if "." in text else text + ".0"


def picos_per_million(x):
    """A curated TOML price (USD per million tokens, number or string) -> picos per token."""
    if x is None:
        return None
    return int(Decimal(str(x)) * 10**6)


def rate(v, field):
    x = v.get(field)
    return None if x is None else picos(x)


def limit(v, field):
    x = v.get(field)
    if isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0 or x != int(x):
        return None
    return int(x)


def convert(key, v):
    """(price dict, tiers list) in pico-dollars, or None when not token-priced."""
    tiered = v.get("tiered_pricing")
    ranged = []
    if tiered is not None and not isinstance(tiered, list):
        raise ValueError(f"tiered_pricing: expected a list, found {tiered!r}")
    if isinstance(tiered, list):
        model_output = rate(v, "output_cost_per_token") or 0
        for i, t in enumerate(tiered):
            # As llmtel-pricing's loader: a malformed tier is an error, never left out.
            if not isinstance(t, dict):
                raise ValueError(f"tiered_pricing[{i}]: expected an object, found {t!r}")
            if t.get("input_cost_per_token") is None:
                continue  # not priced per token: e.g. per-query search tiers
            rng = t.get("range")
            start = limit({"s": rng[0]}, "s") if isinstance(rng, list) and rng else None
            if start is None:
                raise ValueError(f"tiered_pricing[{i}].range: invalid range {rng!r}")
            i = picos(t["input_cost_per_token"])
            o = rate(t, "output_cost_per_token")
            o = model_output if o is None else o
            cr = rate(t, "cache_read_input_token_cost")
            cw = rate(t, "cache_creation_input_token_cost")
            rs = rate(t, "output_cost_per_reasoning_token")
            ranged.append((start, {"input": i, "output": o,
                                   "cache_read": i if cr is None else cr,
                                   "cache_write": i if cw is None else cw,
                                   "reasoning": rs}))
        ranged.sort(key=lambda r: r[0])
        if len({r[0] for r in ranged}) != len(ranged):
            raise ValueError("tiered_pricing: two tiers start at the same prompt size")
    if ranged:
        base = dict(ranged[0][1])
        tiers = []
        for start, r in ranged[1:]:
            t = dict(r)
            t["reasoning"] = r["output"] if r["reasoning"] is None else r["reasoning"]
            t["above_input_tokens"] = start
            tiers.append(t)
    else:
        if v.get("input_cost_per_token") is None and not units(v):
            return None
        out = rate(v, "output_cost_per_token")
        if out is None and v.get("mode") == "image_generation":
            out = rate(v, "output_cost_per_image_token")  # gpt-image-1: image output tokens
        base = {
            "input": rate(v, "input_cost_per_token") or 0,
            "output": out or 0,
            "cache_read": rate(v, "cache_read_input_token_cost"),
            "cache_write": rate(v, "cache_creation_input_token_cost"),
            "reasoning": rate(v, "output_cost_per_reasoning_token"),
        }
        by = {}
        for field, x in v.items():
            m = ABOVE.match(field)
            if not m or x is None:
                continue
            threshold = int(m.group(2)) * (1000 if m.group(3) else 1)
            by.setdefault(threshold, {})[m.group(1)] = picos(x)
        tiers = []
        cur = dict(base)
        for threshold in sorted(by):
            f = by[threshold]
            cur["input"] = f.get("input_cost_per_token", cur["input"])
            cur["output"] = f.get("output_cost_per_token", cur["output"])
            cur["cache_read"] = f.get("cache_read_input_token_cost", cur["cache_read"])
            cur["cache_write"] = f.get("cache_creation_input_token_cost", cur["cache_write"])
            tiers.append({"above_input_tokens": threshold, "input": cur["input"],
                          "output": cur["output"], "cache_read": cur["cache_read"],
                          "cache_write": cur["cache_write"], "reasoning": None})
    if len(tiers) > MAX_TIERS_PER_PRICE:
        raise ValueError(f"more than {MAX_TIERS_PER_PRICE} long-context tiers")
    monotone(key, base, tiers)
    base["dims"] = dims(v, base)
    base["cache_write_1h"] = rate(v, "cache_creation_input_token_cost_above_1hr")
    base["batch_input"] = rate(v, "input_cost_per_token_batches")
    base["batch_output"] = rate(v, "output_cost_per_token_batches")
    base["batch_cache_read"] = rate(v, "cache_read_input_token_cost_batches")
    base["batch_cache_write"] = rate(v, "cache_creation_input_token_cost_batches")
    return base, tiers


ADJUSTED = []

SERVICE_TIERS = ["priority", "flex"]
MODALITY = [("audio_input", "input_cost_per_audio_token"),
            ("audio_output", "output_cost_per_audio_token"),
            ("image_input", "input_cost_per_image_token"),
            ("video_input", "input_cost_per_video_token"),
            ("cache_read_audio", "cache_read_input_audio_token_cost"),
            ("cache_read_image", "cache_read_input_image_token_cost"),
            ("cache_write_audio", "cache_creation_input_audio_token_cost"),
            ("image_output", "output_cost_per_image_token")]
TIER_FIELDS = [("input", "input_cost_per_token"), ("output", "output_cost_per_token"),
               ("cache_read", "cache_read_input_token_cost"),
               ("cache_write", "cache_creation_input_token_cost"),
               ("audio_input", "input_cost_per_audio_token"),
               ("cache_read_audio", "cache_read_input_audio_token_cost"),
               ("image_output", "output_cost_per_image_token")]


def usd_picos(x, field):
    """USD (float, per request or unit) -> pico-dollars, as llmtel's Usd::from_f64
    (shortest repr, halves up)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0:
        raise ValueError(f"{field}: not a price {x!r}")
    return int((Decimal(repr(float(x))) * PICO).to_integral_value(ROUND_HALF_UP))


def units(v):
    """Per-unit prices of image, speech and transcription entries (litellm.rs units)."""
    mode = v.get("mode")
    if mode not in UNIT_KINDS:
        return {}
    u = {}
    if mode == "image_generation":
        x = v.get("output_cost_per_image")
        x = v.get("input_cost_per_image") if x is None else x
        if x is not None:
            u["image"] = usd_picos(x, "output_cost_per_image")
    for name, field in (("input_character", "input_cost_per_character"),
                        ("input_second", "input_cost_per_second"),
                        ("output_second", "output_cost_per_second")):
        if v.get(field) is not None:
            u[name] = usd_picos(v[field], field)
    return u


# llmtel-pricing's MAX_TIERS_PER_PRICE, MAX_OFF_PEAK_WINDOWS and MAX_OFF_PEAK_HOURS_PER_WINDOW.
MAX_TIERS_PER_PRICE = 32
MAX_OFF_PEAK_WINDOWS = 64
MAX_OFF_PEAK_HOURS_PER_WINDOW = 48
# The zones llmtel-pricing counts off-peak weekdays in without a time-zone database
# (dims.rs time_zone).
FIXED_ZONES = ("UTC", "Etc/UTC", "Z", "Asia/Shanghai", "Asia/Chongqing", "PRC", "Asia/Hong_Kong",
               "Asia/Singapore", "Asia/Tokyo", "Asia/Seoul")


def parse_hours(h):
    """Same rule as llmtel-pricing's parse_hours: "HH:MM-HH:MM" UTC, end 00:00 = 24:00."""
    m = re.fullmatch(r"\s*(\d+):(\d+)\s*-\s*(\d+):(\d+)\s*", h)
    if not m:
        raise ValueError(f"off_peak_pricing: invalid hours_utc {h!r}")
    a, b = int(m.group(1)) * 60 + int(m.group(2)), int(m.group(3)) * 60 + int(m.group(4))
    b = 1440 if b == 0 else b
    if not a < b <= 1440:
        raise ValueError(f"off_peak_pricing: invalid hours_utc {h!r}")
    return h.strip()


def dims(v, base):
    """Service tiers, modality rates, off-peak pricing and per-request charges, as
    llmtel-pricing's LiteLLM loader reads them (litellm.rs JsonCtx::dims)."""
    d = {"modality": {}, "service_tier": {}, "off_peak": None, "per_request": {},
         "per_unit": units(v)}
    for name, field in MODALITY:
        if v.get(field) is not None:
            d["modality"][name] = picos(v[field])
    for tier in SERVICE_TIERS:
        st = {}
        for name, field in TIER_FIELDS:
            x = v.get(f"{field}_{tier}")
            if x is not None:
                st[name] = picos(x)
        if not st:
            continue
        cur = {"input": st.get("input", base["input"]), "output": st.get("output", base["output"]),
               "cache_read": st.get("cache_read", base["cache_read"]),
               "cache_write": st.get("cache_write", base["cache_write"])}
        pat = re.compile(r"^(%s)_above_(\d+)(k?)_tokens_%s$" % ("|".join(TIERED_FIELDS), tier))
        by = {}
        for field, x in v.items():
            m = pat.match(field)
            if not m or x is None:
                continue
            threshold = int(m.group(2)) * (1000 if m.group(3) else 1)
            by.setdefault(threshold, {})[m.group(1)] = picos(x)
        tiers = []
        for threshold in sorted(by):
            f = by[threshold]
            cur["input"] = f.get("input_cost_per_token", cur["input"])
            cur["output"] = f.get("output_cost_per_token", cur["output"])
            if "cache_read_input_token_cost" in f:
                cur["cache_read"] = f["cache_read_input_token_cost"]
            if "cache_creation_input_token_cost" in f:
                cur["cache_write"] = f["cache_creation_input_token_cost"]
            tiers.append({"above_input_tokens": threshold, "input": cur["input"],
                          "output": cur["output"], "cache_read": cur["cache_read"],
                          "cache_write": cur["cache_write"], "reasoning": None})
        st["tiers"] = tiers
        d["service_tier"][tier] = st
    op = v.get("off_peak_pricing")
    if op is not None:
        if not isinstance(op, dict) or op.get("input_cost_per_token") is None \
                or op.get("output_cost_per_token") is None:
            raise ValueError("off_peak_pricing needs input_cost_per_token and output_cost_per_token")
        windows = []
        if len(op.get("windows") or []) > MAX_OFF_PEAK_WINDOWS:
            raise ValueError(f"off_peak_pricing: more than {MAX_OFF_PEAK_WINDOWS} windows")
        for w in op.get("windows") or []:
            hours = w.get("hours_utc")
            hours = [hours] if isinstance(hours, str) else list(hours or [])
            days = w.get("weekdays", [1, 2, 3, 4, 5, 6, 7])
            if not hours or any(not isinstance(x, int) or not 1 <= x <= 7 for x in days):
                raise ValueError(f"off_peak_pricing: invalid window {w!r}")
            if len(hours) > MAX_OFF_PEAK_HOURS_PER_WINDOW:
                raise ValueError(f"off_peak_pricing: a window with more than "
                                 f"{MAX_OFF_PEAK_HOURS_PER_WINDOW} hours_utc ranges")
            # A set, as llmtel-pricing keeps it (a day listed twice is in it once).
            windows.append({"weekdays": sorted(set(days)),
                            "hours_utc": [parse_hours(h) for h in hours]})
        zone = op.get("weekday_timezone")
        if zone is not None and zone not in FIXED_ZONES:
            # The built-in catalog loads in every build, with or without a time-zone database.
            raise ValueError(f"off_peak_pricing.weekday_timezone: {zone!r} is not one of {FIXED_ZONES}")
        d["off_peak"] = {"input": picos(op["input_cost_per_token"]),
                         "output": picos(op["output_cost_per_token"]),
                         "cache_read": rate(op, "cache_read_input_token_cost"),
                         "windows": windows, "weekday_timezone": op.get("weekday_timezone")}
    ws = v.get("search_context_cost_per_query")
    if isinstance(ws, dict):
        sizes = {s: usd_picos(ws[f"search_context_size_{s}"], "search_context_cost_per_query")
                 for s in ("low", "medium", "high")
                 if ws.get(f"search_context_size_{s}") is not None}
        anyp = sizes.get("medium", sizes.get("low", sizes.get("high")))
        if anyp is not None:
            d["per_request"]["web_search"] = {s: sizes.get(s, anyp) for s in ("low", "medium", "high")}
    if v.get("code_interpreter_cost_per_session") is not None:
        d["per_request"]["code_interpreter_session"] = usd_picos(
            v["code_interpreter_cost_per_session"], "code_interpreter_cost_per_session")
    if v.get("file_search_cost_per_1k_calls") is not None:
        d["per_request"]["file_search_call"] = usd_picos(
            v["file_search_cost_per_1k_calls"], "file_search_cost_per_1k_calls") // 1000
    return d


def usd_text(p):
    """Exact pico-dollars -> USD decimal TOML number literal."""
    text = format(Decimal(p) / PICO, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if "." in text else text + ".0"


def emit_dims(out, d):
    for tier, st in d["service_tier"].items():
        out.append(f"[model.price.service_tier.{tier}]")
        for name, _ in TIER_FIELDS:
            if st.get(name) is not None:
                out.append(f"{name} = {per_million(st[name])}")
        for t in st["tiers"]:
            out.append(f"[[model.price.service_tier.{tier}.tier]]")
            out.append(f"above_input_tokens = {t['above_input_tokens']}")
            out.append(f"input = {per_million(t['input'])}")
            out.append(f"output = {per_million(t['output'])}")
            for f in ["cache_read", "cache_write"]:
                if t.get(f) is not None:
                    out.append(f"{f} = {per_million(t[f])}")
    if d["modality"]:
        out.append("[model.price.modality]")
        for name, _ in MODALITY:
            if name in d["modality"]:
                out.append(f"{name} = {per_million(d['modality'][name])}")
    op = d["off_peak"]
    if op is not None:
        out.append("[model.price.off_peak]")
        out.append(f"input = {per_million(op['input'])}")
        out.append(f"output = {per_million(op['output'])}")
        if op["cache_read"] is not None:
            out.append(f"cache_read = {per_million(op['cache_read'])}")
        ws = ", ".join(
            "{ weekdays = [%s], hours_utc = [%s] }" % (
                ", ".join(str(x) for x in w["weekdays"]),
                ", ".join(toml_str(h) for h in w["hours_utc"]))
            for w in op["windows"])
        out.append(f"windows = [{ws}]")
        if op["weekday_timezone"] is not None:
            out.append(f"weekday_timezone = {toml_str(op['weekday_timezone'])}")
    pr = d["per_request"]
    if pr:
        out.append("[model.price.per_request]")
        if "web_search" in pr:
            w = pr["web_search"]
            out.append("web_search = { low = %s, medium = %s, high = %s }" % (
                usd_text(w["low"]), usd_text(w["medium"]), usd_text(w["high"])))
        for f in ["code_interpreter_session", "file_search_call"]:
            if f in pr:
                out.append(f"{f} = {usd_text(pr[f])}")
    pu = d["per_unit"]
    if pu:
        out.append("[model.price.per_unit]")
        for f in ["image", "input_character", "input_second", "output_second"]:
            if f in pu:
                out.append(f"{f} = {usd_text(pu[f])}")


def effective(base, t):
    """A tier's effective rates as llmtel applies them (Price::rates_for, Rates::cost)."""
    cr = t.get("cache_read") if t.get("cache_read") is not None else base.get("cache_read")
    cw = t.get("cache_write") if t.get("cache_write") is not None else base.get("cache_write")
    rs = t.get("reasoning") if t.get("reasoning") is not None else base.get("reasoning")
    return {"input": t["input"], "output": t["output"],
            "cache_read": t["input"] if cr is None else cr,
            "cache_write": t["input"] if cw is None else cw,
            "reasoning": t["output"] if rs is None else rs}


def monotone(key, base, tiers):
    """A tier never lowers a rate: where LiteLLM lists a tier rate below the rate in force
    just under the threshold (e.g. Vertex Gemini Pro's cache creation above 200k at
    $0.25/M while the base writes at the $1.25/M input rate), the built-in catalog keeps
    the lower tier's rate, and the header lists the entry."""
    prev = effective(base, base)
    for t in tiers:
        eff = effective(base, t)
        for f in ("input", "output", "cache_read", "cache_write", "reasoning"):
            if eff[f] < prev[f]:
                t[f] = prev[f]
                eff[f] = prev[f]
                ADJUSTED.append(f"{key} {f} above {t['above_input_tokens']}")
        prev = eff


def keep(key, v):
    """Whether a LiteLLM entry goes into the built-in catalog."""
    if key == "sample_spec" or not isinstance(v, dict):
        return False
    if v.get("mode") not in KINDS or provider_of(v.get("litellm_provider")) is None:
        return False
    if key.startswith("ft:") or "/ft:" in key:
        return False  # fine-tune base prices: the user's fine-tune has its own id
    # LiteLLM's internal size-class buckets, not model names.
    if key.startswith(("fireworks-ai-", "together-ai-")):
        return False
    # Region-pinned and commitment keys (bedrock/us-east-1/..., azure/eu/...): the
    # global entry of the same model is kept.
    lp = v.get("litellm_provider", "")
    if lp.startswith(("bedrock", "azure")) and key.count("/") >= 2:
        return False
    return True


def catalog_id(key, v):
    """Vertex AI's bare keys (gemini-2.5-pro under vertex_ai-language-models) clash with
    the Gemini API's names: list them as vertex_ai/<key>, as LiteLLM users call them."""
    if provider_of(v.get("litellm_provider")) == "gcp.vertex_ai" and "/" not in key:
        return "vertex_ai/" + key
    return key


SNAPSHOT_WORDS = {"latest", "preview", "exp", "experimental", "default"}


def is_snapshot_segment(seg):
    """Same rule as llmtel-pricing's resolver (resolve.rs is_snapshot_segment)."""
    if seg.isdigit() and seg.isascii() and len(seg) in (2, 3, 4, 8):
        return True
    return seg in SNAPSHOT_WORDS or (seg[:1] == "v" and seg[1:].isdigit() and seg[1:].isascii())


def snapshot_family(cid, curated_ids):
    """The curated id a snapshot name resolves to by stripping snapshot suffixes, if any."""
    cur = cid.split("@", 1)[0]
    if cur != cid and cur in curated_ids:
        return cur
    while "-" in cur:
        head, last = cur.rsplit("-", 1)
        if not head or not is_snapshot_segment(last):
            return None
        cur = head
        if cur in curated_ids:
            return cur
    return None


def toml_str(s):
    return json.dumps(s, ensure_ascii=False)


def emit(out, cid, provider, kind, v, base, tiers, date, source):
    out.append("[[model]]")
    out.append(f"id = {toml_str(cid)}")
    out.append(f"provider = {toml_str(provider)}")
    if kind != "chat":
        out.append(f"kind = {toml_str(kind)}")
    cw = limit(v, "max_input_tokens")
    if cw is None:
        cw = limit(v, "max_tokens")
    if cw is not None:
        out.append(f"context_window = {cw}")
    mo = limit(v, "max_output_tokens")
    if mo is not None:
        out.append(f"max_output_tokens = {mo}")
    out.append("[[model.price]]")
    out.append(f'effective = "{date}"')
    out.append(f"input = {per_million(base['input'])}")
    out.append(f"output = {per_million(base['output'])}")
    for f in ["cache_read", "cache_write", "cache_write_1h", "reasoning",
              "batch_input", "batch_output", "batch_cache_read", "batch_cache_write"]:
        if base.get(f) is not None:
            out.append(f"{f} = {per_million(base[f])}")
    out.append(f"source = {toml_str(source)}")
    for t in tiers:
        out.append("[[model.price.tier]]")
        out.append(f"above_input_tokens = {t['above_input_tokens']}")
        out.append(f"input = {per_million(t['input'])}")
        out.append(f"output = {per_million(t['output'])}")
        for f in ["cache_read", "cache_write", "reasoning"]:
            if t.get(f) is not None:
                out.append(f"{f} = {per_million(t[f])}")
    emit_dims(out, base["dims"])
    out.append("")


def curated_with_dims(curated_text, litellm, version):
    """Appends LiteLLM's price dimensions (service tiers, modalities, off-peak, per-request)
    to each curated entry whose LiteLLM entry (same id) has them and whose latest price
    (the last [[model.price]] in the text) has LiteLLM's input, output and cache-read
    rates: the dimensions then belong to the price in force."""
    chunks = re.split(r"(?m)^(?=\[\[model\]\]\s*$)", curated_text)
    out, names = [], []
    for chunk in chunks:
        try:
            model = tomllib.loads(chunk).get("model", [None])[0]
        except tomllib.TOMLDecodeError:
            model = None
        v = litellm.get(model["id"]) if model else None
        if not model or not isinstance(v, dict) or model["price"][-1] is not max(
                model["price"], key=lambda p: str(p["effective"])):
            out.append(chunk)
            continue
        latest = model["price"][-1]
        converted = convert(model["id"], v)
        if converted is None:
            out.append(chunk)
            continue
        base, _ = converted
        mine = tuple(picos_per_million(latest.get(f)) for f in ("input", "output"))
        cr = picos_per_million(latest.get("cache_read"))
        if mine != (base["input"], base["output"]) or (cr if cr is not None else mine[0]) != (
                base["cache_read"] if base["cache_read"] is not None else base["input"]):
            out.append(chunk)
            continue
        lines = []
        emit_dims(lines, base["dims"])
        if not lines:
            out.append(chunk)
            continue
        names.append(model["id"])
        rows = chunk.split("\n")
        last = max(i for i, r in enumerate(rows) if r.strip() and not r.lstrip().startswith("#"))
        rows[last + 1:last + 1] = [f"# Dimensions from LiteLLM {version} (added by scripts/gen_catalog.py)"] + lines
        out.append("\n".join(rows))
    return "".join(out), names


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("litellm_json", nargs="?", default=str(SHIPPED))
    ap.add_argument("--version", default=DEFAULT_VERSION, help="litellm version of the file")
    ap.add_argument("--date", default=DEFAULT_DATE,
                    help="date the prices were taken (the litellm release date), YYYY-MM-DD")
    ap.add_argument("--curated", default=str(DATA / "curated.toml"))
    ap.add_argument("--out", default=str(DATA / "catalog.toml"))
    args = ap.parse_args()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", args.date):
        sys.exit(f"--date must be YYYY-MM-DD, got {args.date!r}")

    with open(args.litellm_json, encoding="utf-8") as f:
        litellm = json.load(f)
    curated_text = Path(args.curated).read_text(encoding="utf-8")
    curated = tomllib.loads(curated_text)
    taken = set()
    curated_latest = {}
    curated_provider = {}
    for m in curated.get("model", []):
        curated_provider[m["id"]] = m["provider"]
        taken.add(m["id"])
        taken.update(m.get("aliases", []))
        latest = max(m["price"], key=lambda p: str(p["effective"]))
        rates = tuple(picos_per_million(latest.get(f)) for f in ("input", "output", "cache_read"))
        for name in [m["id"]] + m.get("aliases", []):
            curated_latest[name] = (m["id"], rates)

    source = f"LiteLLM {args.version} model_prices_and_context_window.json"
    body, providers, overridden, covered = [], {}, 0, 0
    seen = set()
    for key in sorted(litellm):
        v = litellm[key]
        if not keep(key, v):
            continue
        cid = catalog_id(key, v)
        if cid in seen or (cid != key and cid in litellm):
            continue
        if cid in taken:
            overridden += 1
            continue
        try:
            converted = convert(key, v)
        except ValueError as e:
            sys.exit(f"{args.litellm_json}: model {key!r}: {e}")
        if converted is None:
            continue
        base, tiers = converted
        name = cid.rsplit("/", 1)[-1]
        if "/" in cid and curated_provider.get(name) == provider_of(v["litellm_provider"]):
            # gemini/gemini-2.5-pro: the resolver strips the prefix to the curated entry.
            covered += 1
            continue
        family = snapshot_family(cid, curated_latest)
        if family is not None and not tiers:
            _, rates = curated_latest[family]
            if rates == (base["input"], base["output"], base["cache_read"]):
                # A dated snapshot priced as its curated family: the resolver maps it to
                # the family (keeping the family's price history), so it is not listed.
                covered += 1
                continue
        seen.add(cid)
        provider = provider_of(v["litellm_provider"])
        providers[provider] = providers.get(provider, 0) + 1
        emit(body, cid, provider, KINDS[v.get("mode")], v, base, tiers, args.date,
             f"{source} (key {key})" if cid != key else source)

    n_curated = len(curated.get("model", []))
    for m in curated.get("model", []):
        providers[m["provider"]] = providers.get(m["provider"], 0) + 1
    total = n_curated + len(seen)
    header = [
        "# llmtel built-in price catalog. GENERATED by scripts/gen_catalog.py: do not edit;",
        "# edit data/curated.toml (hand-curated entries with price history) and re-run",
        "#   python3 scripts/gen_catalog.py",
        "#",
        f"# {total} models: {n_curated} curated + {len(seen)} from LiteLLM {args.version}",
        f"# (MIT licensed), priced as of {args.date} (that release's date); {overridden}",
        "# LiteLLM entries replaced by a curated entry of the same id or alias, and",
        f"# {covered} prefixed names or dated snapshots left to resolve to their curated",
        "# entry (same provider and price).",
        "# Providers: " + ", ".join(f"{p} {n}" for p, n in sorted(providers.items())),
        "# Tier rates raised to the rate below (LiteLLM lists them lower; a tier never",
        "# lowers a rate): " + ("; ".join(ADJUSTED) if ADJUSTED else "none") + ".",
        "# Format: data/README.md.",
        "",
    ]
    curated_text, with_dims = curated_with_dims(curated_text, litellm, args.version)
    header.insert(-2, "# Curated entries given LiteLLM's service tiers, modality rates, off-peak and")
    header.insert(-2, "# per-request prices (their latest price equals LiteLLM's): "
                  + (", ".join(with_dims) if with_dims else "none") + ".")
    text = "\n".join(header) + curated_text.rstrip("\n") + "\n\n" + \
        "# " + "-" * 88 + "\n# Generated from LiteLLM " + args.version + "\n# " + "-" * 88 + "\n\n" + \
        "\n".join(body)
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {total} models ({n_curated} curated, {len(seen)} generated), "
          f"{len(providers)} providers", file=sys.stderr)


if __name__ == "__main__":
    main()
