"""Build a tiny random-weight Llama and a locally trained tokenizer, for `transformers serve`.

Run with the Python of the HF venv that scripts/setup_realservers.sh creates:

    python scripts/build_tiny_model.py OUT_DIR

Nothing is downloaded: the tokenizer is a byte-level BPE trained (with the `tokenizers`
library) on text generated here from a seeded RNG, and the weights are random (seeded).
Rebuilds give byte-identical files, so the output can be cached and compared by hash.
The model is useless as a language model, which is the point: it is small (about 70 KB of
weights), loads in well under a second on the CPU, and produces a deterministic token stream
for a given prompt and seed. Always ask it for few tokens (`max_tokens` 8 or so).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
from pathlib import Path

SEED = 1234
VOCAB_SIZE = 512
BUILD_VERSION = 1  # bump when the recipe changes, so caches are rebuilt

# A ChatML-style template: simple, and understood by every OpenAI-compatible server.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]


def _corpus(seed: int, n_lines: int = 4000) -> list[str]:
    """Generated, seeded text: pseudo-words over a skewed alphabet plus some real words."""
    rng = random.Random(seed)
    real = [
        "the",
        "a",
        "notebook",
        "model",
        "server",
        "token",
        "stream",
        "hello",
        "world",
        "say",
        "test",
        "answer",
        "question",
        "user",
        "assistant",
        "system",
        "reply",
        "short",
        "long",
        "please",
        "thanks",
        "cell",
        "kernel",
        "jupyter",
        "python",
        "data",
        "frame",
        "result",
        "cost",
        "usage",
        "latency",
        "first",
        "chunk",
        "done",
        "error",
        "key",
        "proxy",
        "local",
    ]
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    weights = [26 - i for i in range(len(letters))]
    lines = []
    for _ in range(n_lines):
        words = []
        for _ in range(rng.randint(3, 14)):
            if rng.random() < 0.45:
                words.append(rng.choice(real))
            else:
                n = rng.randint(1, 8)
                words.append("".join(rng.choices(letters, weights=weights, k=n)))
        line = " ".join(words)
        if rng.random() < 0.3:
            line = line.capitalize() + rng.choice([".", "?", "!", ","])
        lines.append(line)
    return lines


def build_tokenizer(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(SEED), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 512
    fast.save_pretrained(str(out))


def _printable(text: str) -> bool:
    return bool(text) and all(" " <= c <= "~" for c in text)


def build_model(out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(out))
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=0.3,
    )
    model = LlamaForCausalLM(config)
    model.eval()
    # Never generate special tokens or tokens that do not decode to printable ASCII: their rows
    # of the (untied) output projection are zeroed, so their logit is 0 while the best of the
    # ~500 random logits is always well above 0. Answers are then plain visible text (no
    # U+FFFD from split UTF-8, no control characters, no early end-of-sequence), while any
    # input still tokenizes (the byte alphabet stays in the vocabulary).
    banned = [i for i in range(len(tok)) if not _printable(tok.decode([i]))]
    banned += list(tok.all_special_ids)
    with torch.no_grad():
        model.lm_head.weight[sorted(set(banned))] = 0.0
    # Greedy by default, so that the same prompt gives the same answer.
    model.generation_config = GenerationConfig(
        do_sample=False,
        max_new_tokens=16,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model.save_pretrained(str(out))


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "BUILD_INFO.json":
            h.update(p.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def build(out: Path) -> str:
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    build_tokenizer(tmp)
    build_model(tmp)
    digest = tree_digest(tmp)
    import tokenizers
    import torch
    import transformers

    (tmp / "BUILD_INFO.json").write_text(
        json.dumps(
            {
                "build_version": BUILD_VERSION,
                "seed": SEED,
                "digest": digest,
                "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__,
                "torch": torch.__version__,
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return digest


def install_in_hub_cache(model_dir: Path, hub_cache: Path, repo_id: str, digest: str) -> Path:
    """Lay the built files out as an offline Hugging Face hub cache entry for `repo_id`.

    `transformers serve REPO_ID` with HF_HUB_OFFLINE=1 and HF_HUB_CACHE=hub_cache then loads the
    model from here without any network access, and its GET /v1/models (which scans the hub
    cache) lists it under a normal "org/name" id. Plain files, not symlinks, are accepted by
    huggingface_hub's cache scanner.
    """
    commit = digest[:40]
    repo_dir = hub_cache / ("models--" + repo_id.replace("/", "--"))
    if repo_dir.exists():
        shutil.rmtree(repo_dir)
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    for p in sorted(model_dir.iterdir()):
        if p.is_file() and p.name != "BUILD_INFO.json":
            shutil.copyfile(p, snap / p.name)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    return snap


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("out", type=Path, help="directory to write the model + tokenizer to")
    ap.add_argument("--hub-cache", type=Path, help="also install into this HF hub cache dir")
    ap.add_argument("--repo-id", default="nbllm/tiny-llama", help="repo id in the hub cache")
    args = ap.parse_args(argv[1:])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    out = args.out.resolve()
    digest = build(out)
    print(f"built {out} sha256-tree={digest}")
    if args.hub_cache:
        snap = install_in_hub_cache(out, args.hub_cache.resolve(), args.repo_id, digest)
        print(f"installed as {args.repo_id} in {snap}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
