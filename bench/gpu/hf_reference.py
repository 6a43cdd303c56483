# The Hugging Face side of bench/gpu/run.sh: transformers + peft with the settings `peft bench` uses, on one GPU.
# Random-init models, bf16 base, LoRA r=16 alpha=32, dropout 0, AdamW (torch's default, on the trainable
# parameters), one optimizer step per iteration; medians of timed steps after warm-up, with the GPU synchronised.
# Usage: python3 hf_reference.py OUT.json [--steps N]
import ctypes, json, sys, threading, time, statistics
import torch
import transformers, peft
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration
from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, get_peft_model

class NvmlPeak:
    """The device's used memory through NVML, sampled every 2 ms, as `peft bench` measures it: what a row adds to the
    use before CUDA was initialised (the CUDA context included)."""

    def __init__(self):
        self.lib = ctypes.CDLL("libnvidia-ml.so.1")
        self.lib.nvmlInit_v2()
        self.handle = ctypes.c_void_p()
        self.lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(self.handle))
        self.baseline = self.used()

    def used(self):
        memory = (ctypes.c_ulonglong * 3)()
        self.lib.nvmlDeviceGetMemoryInfo(self.handle, ctypes.byref(memory))
        return memory[2]

    def start(self):
        self.peak, self.stop = self.used(), False

        def sample():
            while not self.stop:
                self.peak = max(self.peak, self.used())
                time.sleep(0.002)
        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()

    def finish(self):
        self.stop = True
        self.thread.join()
        return self.peak - self.baseline


nvml = NvmlPeak()   # before anything touches CUDA
out = sys.argv[1]
steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 10
dev = torch.device("cuda")
torch.manual_seed(0)
results = {"transformers": transformers.__version__, "peft": peft.__version__, "torch": torch.__version__,
           "device": torch.cuda.get_device_name(0), "rows": {}}


host_times = []   # the host's queue time of each timed step (before synchronising), for the last median_seconds call


def median_seconds(fn, n, warmup=2):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    host_times.clear()
    for _ in range(n):
        start = time.perf_counter()
        fn()
        host_times.append(time.perf_counter() - start)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gpt2():
    return GPT2LMHeadModel(GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))


def tinyllama():
    return LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                                        num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048))


def t5_base():
    return T5ForConditionalGeneration(T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12,
                                               num_decoder_layers=12, num_heads=12, feed_forward_proj="relu",
                                               tie_word_embeddings=True, dropout_rate=0.0))


def lora_config(targets, dora=False):
    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets, use_dora=dora)


def lora(model, targets, adapters=1):
    cfg = lora_config(targets)
    m = get_peft_model(model, cfg, adapter_name="a0")
    for i in range(1, adapters):
        m.add_adapter(f"a{i}", cfg)
    return m


def build(make):
    with torch.device(dev):
        m = make()
    return m.to(torch.bfloat16)


def step_row(name, make, config, batch, length, seq2seq=False):
    """One training-step row; `config` is the peft config (peft's defaults where `peft bench` keeps them too)."""
    torch.cuda.reset_peak_memory_stats()
    nvml.start()
    model = get_peft_model(build(make), config)
    ids = torch.randint(0, model.config.vocab_size, (batch, length), device=dev)
    kwargs = {"input_ids": ids, "labels": ids}
    if seq2seq:
        dec = torch.randint(0, model.config.vocab_size, (batch, max(2, length // 4)), device=dev)
        kwargs = {"input_ids": ids, "decoder_input_ids": dec, "labels": dec}
    model.eval()
    with torch.no_grad():
        forward = median_seconds(lambda: model(**kwargs).loss, steps)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def train_step():
        opt.zero_grad(set_to_none=True)
        model(**kwargs).loss.backward()
        opt.step()
    train = median_seconds(train_step, steps)
    train_host = statistics.median(host_times)
    peak_nvml = nvml.finish()
    tokens = batch * length
    results["rows"][name] = {"forward_ms": forward * 1000, "train_step_ms": train * 1000, "tokens_per_s": tokens / train,
                             "peak_bytes": torch.cuda.max_memory_allocated(), "peak_nvml_bytes": peak_nvml,
                             "train_step_host_ms": train_host * 1000}
    print(f"{name}: {tokens / train:,.0f} tokens/s ({train * 1000:.1f} ms/step), forward {forward * 1000:.1f} ms, "
          f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated, {peak_nvml / 2**30:.2f} GiB device use (NVML)", flush=True)
    del model, opt
    torch.cuda.empty_cache()


def generation_rows():
    model = lora(build(gpt2), ["c_attn"])
    model.eval()
    for batch in (1, 16):
        prompt = torch.randint(0, 50257, (batch, 32), device=dev)
        mask = torch.ones_like(prompt)

        def run():
            with torch.no_grad():
                model.generate(input_ids=prompt, attention_mask=mask, max_new_tokens=128, min_new_tokens=128,
                               do_sample=False, pad_token_id=0)
        seconds = median_seconds(run, 3, warmup=1)
        results["rows"][f"generate_b{batch}"] = {"new_tokens_per_s": batch * 128 / seconds}
        print(f"generate batch {batch}: {batch * 128 / seconds:,.0f} new tokens/s", flush=True)
    del model
    torch.cuda.empty_cache()


def mixed_row():
    model = lora(build(gpt2), ["c_attn", "attn.c_proj"], adapters=4)
    model.eval()
    ids = torch.randint(0, 50257, (16, 256), device=dev)
    names = [f"a{i % 4}" for i in range(16)]
    model.set_adapter("a0")
    with torch.no_grad():
        single = median_seconds(lambda: model(input_ids=ids).logits, steps)
        mixed = median_seconds(lambda: model(input_ids=ids, adapter_names=names).logits, steps)
    results["rows"]["mixed_16x256"] = {"single_ms": single * 1000, "mixed_ms": mixed * 1000, "ratio": mixed / single}
    print(f"mixed 4 adapters 16x256: {mixed / single:.2f}x the single-adapter forward", flush=True)
    del model
    torch.cuda.empty_cache()


step_row("gpt2_lora_8x1024", gpt2, lora_config(["attn.c_attn", "attn.c_proj"]), 8, 1024)
step_row("tinyllama_lora_4x1024", tinyllama, lora_config(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]), 4, 1024)
step_row("t5base_lora_8x512", t5_base, lora_config(["q", "k", "v", "o", "wi", "wo"]), 8, 512, seq2seq=True)
generation_rows()
mixed_row()
# Each other method on GPT-2 124M; the prompt-learning rows at 1000 tokens, so that 20 virtual tokens fit 1024 positions.
step_row("gpt2_dora_8x1024", gpt2, lora_config(["attn.c_attn", "attn.c_proj"], dora=True), 8, 1024)
step_row("gpt2_ia3_8x1024", gpt2, IA3Config(task_type="CAUSAL_LM"), 8, 1024)
step_row("gpt2_prompt_8x1000", gpt2, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20), 8, 1000)
step_row("gpt2_ptuning_8x1000", gpt2, PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=20,
                                                           encoder_reparameterization_type="MLP"), 8, 1000)
step_row("gpt2_prefix_8x1000", gpt2, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20), 8, 1000)
json.dump(results, open(out, "w"), indent=1)
