"""Experiment: tiny-model variants through the harness's own recipe.run. Args: key=value."""
import os, sys, json, time, dataclasses, hashlib
from pathlib import Path
from harness import profiles, recipe
from harness.models import tiny as T
args = dict(a.split("=", 1) for a in sys.argv[1:])
arch = {k: int(args.pop(k)) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size") if k in args}
T.TINY_CONFIG.update(arch)
if "num_attention_heads" in arch: T.TINY_CONFIG["num_key_value_heads"] = arch["num_attention_heads"]
T.LM_HEAD_STD = float(args.pop("head_std", T.LM_HEAD_STD))
T.RESIDUAL_OUTPUT_STD = float(args.pop("resid_std", T.RESIDUAL_OUTPUT_STD))
T.COPY_HEADS = args.pop("copy", "0") == "1"
tag = hashlib.sha1((json.dumps([T.TINY_CONFIG, T.LM_HEAD_STD, T.RESIDUAL_OUTPUT_STD, T.COPY_HEADS]) + Path(T.__file__).read_text()).encode()).hexdigest()[:10]
base = profiles.PROFILES["tiny"]
prof = dataclasses.replace(base, build_checkpoint=lambda o: T.build_tiny_checkpoint(Path(os.environ.get("EXP_DIR", "/tmp/exp")) / "models" / tag))
overrides = {k: json.loads(v) for k, v in args.items()}
cfg = base.recipe_config().with_overrides(overrides)
t = time.perf_counter()
run = recipe.run(prof, profiles.ModelOptions(models_dir=Path(os.environ.get("EXP_DIR", "/tmp/exp")) / "models"), Path(os.environ.get("EXP_DIR", "/tmp/exp")) / "runs", config=cfg, fresh=True)
m = run.manifest; tr = m["training"]; s = m["metrics"]
L = [p["loss"] for p in tr["loss_history"]]
print(json.dumps({"arch": T.TINY_CONFIG["hidden_size"], "layers": T.TINY_CONFIG["num_hidden_layers"], "head": T.LM_HEAD_STD, "resid": T.RESIDUAL_OUTPUT_STD, "copy": T.COPY_HEADS, **overrides}))
print(f"steps {tr['global_step']} train {m['phase_seconds']['train']:.0f}s total {time.perf_counter()-t:.0f}s loss {L[0]:.2f}->{L[-1]:.2f} min {min(L):.2f}")
for w in ("base", "tuned"):
    x = s[w]; print(f"{w}: bleu {x['vs_translation_extra']['bleu']:.2f} chrf {x['vs_translation_extra']['chrf']:.1f} stop {x['stop_rate']:.2f} nonempty_stop {x['non_empty_stop_rate']:.2f} empty {x['empty_rate']:.2f} words {x['mean_words']:.1f}")
for g in run.generations("tuned")[:6]: print("  ", g["stop_reason"], repr(g["raw"][:110]))
