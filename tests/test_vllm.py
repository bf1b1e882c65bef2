"""The vLLM backend on a GPU (`gpu` marker: skipped without CUDA and vLLM, and by default).

A small Llama built here (hidden 256, head size 64: a size vLLM's kernels take) with a LoRA adapter
written by PEFT: K samples per prompt, seeded, the same greedy text and log-probability as the
transformers backend, chat messages through the template, a new LoRA name and id when an
adapter's weights change in the same folder, and GPU memory given back by close().
"""

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)
pytest.importorskip("vllm", reason="vLLM is not installed: pip install 'selfimprove[gpu]'")

from selfimprove.backends import SamplingParams  # noqa: E402
from selfimprove.backends.transformers import TransformersBackend  # noqa: E402
from selfimprove.backends.vllm import VLLMBackend  # noqa: E402
from selfimprove.config import GenerateConfig, ModelConfig  # noqa: E402
from selfimprove.records import Weights  # noqa: E402

PROMPTS = ["Q: 1+1?\nA:", "Q: a longer question about apples?\nA:"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from selfimprove.tiny import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("vllm") / "model", chat_template=True,
                               hidden_size=256, num_heads=4))


def lora(model, folder, seed):
    from peft import LoraConfig, get_peft_model
    from selfimprove.models import load_model

    torch.manual_seed(seed)
    peft = get_peft_model(load_model(Weights(model), "float32", "cpu"),
                          LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def engine(model):
    b = VLLMBackend(ModelConfig(name=model, dtype="float32"), GenerateConfig(),
                    engine_options={"gpu_memory_utilization": 0.3, "max_model_len": 512, "enforce_eager": True})
    yield b
    b.close()


def test_k_samples_seeded_and_greedy_matches_transformers(engine, model):
    w = Weights(model)
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=12, seed=3)
    a, b = engine.generate(PROMPTS, params, w), engine.generate(PROMPTS, params, w)
    assert [len(r) for r in a] == [4, 4] and a == b
    assert engine.generate(PROMPTS[:1], params, w)[0] == a[0]  # a prompt's samples do not depend on the batch
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    ref = TransformersBackend(ModelConfig(name=model, dtype="float32", device="cuda")).generate(PROMPTS, greedy, w)
    got = engine.generate(PROMPTS, greedy, w)
    assert [r[0].text for r in got] == [r[0].text for r in ref]
    assert [r[0].num_tokens for r in got] == [r[0].num_tokens for r in ref]
    assert [r[0].logprob for r in got] == pytest.approx([r[0].logprob for r in ref], abs=2e-2)
    chat = engine.generate([[{"role": "user", "content": "1+1?"}]], greedy, w)
    assert len(chat) == 1 and chat[0][0].num_tokens > 0


def test_a_changed_adapter_gets_a_new_name_and_id(engine, model, tmp_path):
    folder = tmp_path / "adapter"
    first = engine._use(Weights(model, lora(model, folder, seed=1)))
    assert engine._use(Weights(model, str(folder))) is first  # same content: the loaded adapter is reused
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    out1 = engine.generate(PROMPTS, params, Weights(model, str(folder)))
    second = engine._use(Weights(model, lora(model, folder, seed=2)))  # a redone round: new weights, same folder
    assert second.lora_int_id != first.lora_int_id and second.lora_name != first.lora_name
    out2 = engine.generate(PROMPTS, params, Weights(model, str(folder)))
    assert out1 != out2
    assert engine.generate(PROMPTS, params, Weights(model)) != out1  # the base is served without the adapter


def test_close_gives_the_gpu_memory_back(model):
    free_before, _ = torch.cuda.mem_get_info()
    b = VLLMBackend(ModelConfig(name=model, dtype="float32"), GenerateConfig(),
                    engine_options={"gpu_memory_utilization": 0.3, "max_model_len": 512, "enforce_eager": True})
    b.generate(PROMPTS, SamplingParams(n=2, max_new_tokens=4), Weights(model))
    during, total = torch.cuda.mem_get_info()
    assert free_before - during > 0.2 * total  # the KV cache took its share
    b.close()
    after, _ = torch.cuda.mem_get_info()
    assert free_before - after < 0.05 * total
