"""Writes a tiny llama-architecture GGUF model with random weights for the drafts tests.

Its text is gibberish: it exists so that a real OpenAI-compatible server (llama.cpp's
llama-server) can answer chat completions, streams, timeouts and refusals of image input in
tests, in well under a second per answer on a CPU. The tokenizer (vocabulary, merges, special
tokens) is copied from a vocab-only GGUF of the llama.cpp source tree
(models/ggml-vocab-llama-spm.gguf). The weights come from a fixed seed, so every run writes the
same file.

    python tiny_model.py --vocab ggml-vocab-llama-spm.gguf --out tiny.gguf
"""

import argparse

import gguf
import numpy as np

# Small enough to load in milliseconds, big enough to be a real llama graph.
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 4
N_LAYER = 2
N_FF = 128
N_CTX = 2048
SEED = 20261207

# ChatML: llama-server applies it to the OpenAI-style messages of /v1/chat/completions.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def copy_tokenizer(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> int:
    """Copies every tokenizer.* key except the chat template; returns the vocabulary size."""
    n_vocab = 0
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer.") or key == "tokenizer.chat_template":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        writer.add_key_value(key, value, vtype, sub_type=sub)
        if key == "tokenizer.ggml.tokens":
            n_vocab = len(value)
    if n_vocab == 0:
        raise SystemExit("the vocab file has no tokenizer.ggml.tokens")
    return n_vocab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", required=True, help="a vocab-only GGUF (llama spm)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    reader = gguf.GGUFReader(args.vocab)
    writer = gguf.GGUFWriter(args.out, arch="llama")
    writer.add_name("wagu-tiny-random")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    n_vocab = copy_tokenizer(reader, writer)
    writer.add_vocab_size(n_vocab)
    writer.add_chat_template(CHAT_TEMPLATE)

    rng = np.random.default_rng(SEED)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    n_embd_kv = N_EMBD // N_HEAD * N_HEAD_KV
    # numpy shapes are ggml's dimensions reversed: (rows = outputs, columns = inputs).
    writer.add_tensor("token_embd.weight", rand(n_vocab, N_EMBD))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", rand(n_vocab, N_EMBD))
    for i in range(N_LAYER):
        p = f"blk.{i}."
        writer.add_tensor(p + "attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(p + "attn_q.weight", rand(N_EMBD, N_EMBD))
        writer.add_tensor(p + "attn_k.weight", rand(n_embd_kv, N_EMBD))
        writer.add_tensor(p + "attn_v.weight", rand(n_embd_kv, N_EMBD))
        writer.add_tensor(p + "attn_output.weight", rand(N_EMBD, N_EMBD))
        writer.add_tensor(p + "ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(p + "ffn_gate.weight", rand(N_FF, N_EMBD))
        writer.add_tensor(p + "ffn_up.weight", rand(N_FF, N_EMBD))
        writer.add_tensor(p + "ffn_down.weight", rand(N_EMBD, N_FF))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {args.out}: llama, {n_vocab} tokens, {N_LAYER} layers of {N_EMBD}")


if __name__ == "__main__":
    main()
