"""The reference recipe as one plain script — no harness — for the overhead benchmark.

Steps and settings are the recipe's (../shared/RECIPE.md), generation one prompt at a time as
the recipe's own `generate` helper does. Prints a JSON line of phase wall times.

    python benchmarks/bare_recipe.py CHECKPOINT_DIR DATA.jsonl [--targets q_proj,k_proj,...] [--epochs N]
        [--lr LR] [--batch-size N] [--seed N] [--eval-limit N]

The options carry a profile's overrides of the recipe (benchmarks/overhead.py passes them), so
both sides of the overhead benchmark train the same steps.
"""

import argparse
import hashlib
import json
import time

import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
from trl import SFTConfig, SFTTrainer


def generate(model, tokenizer, sentence, max_new_tokens=64):
    """The recipe's helper: one prompt, chat template, greedy."""
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": sentence}], tokenize=False,
                                           add_generation_prompt=True)
    tokenized = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").to(model.device)
    model.eval()
    output = model.generate(**tokenized, eos_token_id=tokenizer.eos_token_id, max_new_tokens=max_new_tokens)
    return tokenizer.decode(output[0][tokenized["input_ids"].shape[1]:], skip_special_tokens=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("data")
    parser.add_argument("--targets", default="o_proj,qkv_proj,gate_up_proj,down_proj")
    parser.add_argument("--epochs", type=float, default=10)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--eval-limit", type=int, default=None, help="generate for the first N evaluation sentences only")
    parser.add_argument("--output", default="/tmp/bare-recipe-adapter")
    args = parser.parse_args()
    times, start = {}, time.perf_counter()

    def lap(name):
        nonlocal start
        now = time.perf_counter()
        times[name] = round(now - start, 3)
        start = now

    bnb_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                    bnb_4bit_compute_dtype=torch.float32)
    device_map = {"": 0} if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(args.checkpoint, quantization_config=bnb_config, device_map=device_map)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    tokenizer.pad_token = tokenizer.unk_token
    lap("load")
    model = prepare_model_for_kbit_training(model)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, bias="none", lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=args.targets.split(",")))
    lap("lora")
    rows = [json.loads(line) for line in open(args.data)]
    # The same content-hash split as the harness (so both sides evaluate the same sentences).
    held_out = [int.from_bytes(hashlib.sha256(" ".join(r["sentence"].split()).casefold().encode()).digest()[:8], "big")
                / 2**64 < 0.1 for r in rows]
    train_rows = [r for r, h in zip(rows, held_out) if not h]
    eval_rows = [r for r, h in zip(rows, held_out) if h][:args.eval_limit]
    dataset = Dataset.from_list([{"messages": [{"role": "user", "content": r["sentence"]},
                                               {"role": "assistant", "content": r["translation_extra"]}]}
                                 for r in train_rows])
    lap("data")
    sft_config = SFTConfig(
        output_dir="/tmp/bare-recipe", gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False}, gradient_accumulation_steps=1,
        per_device_train_batch_size=args.batch_size, auto_find_batch_size=True, max_length=64, packing=True,
        packing_strategy="wrapped", num_train_epochs=args.epochs, learning_rate=args.lr, optim="paged_adamw_8bit",
        logging_steps=10, report_to="none", save_strategy="no", seed=args.seed,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False),
    )
    trainer = SFTTrainer(model=model, processing_class=tokenizer, args=sft_config, train_dataset=dataset)
    trainer.train()
    lap("train")
    trainer.save_model(args.output)
    lap("save")
    outputs = [generate(model, tokenizer, r["sentence"]) for r in eval_rows]
    lap("generate")
    print(json.dumps({"phases": times, "total": round(sum(times.values()), 3), "steps": trainer.state.global_step,
                      "eval_rows": len(eval_rows), "first_output": outputs[0] if outputs else None}))


if __name__ == "__main__":
    main()
