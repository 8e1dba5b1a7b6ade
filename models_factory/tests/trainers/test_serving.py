from __future__ import annotations

from pathlib import Path

import pytest

from models_factory.serving.generative import GenerativeServer
from models_factory.tests.trainers.conftest import color_records, sum_records
from models_factory.trainers.common import TrainConfig
from models_factory.trainers.errors import InputError
from models_factory.trainers.generative import LoRATrainer

CONFIG = TrainConfig(method="lora", epochs=15, batch_size=4, lr=5e-2, max_length=48, seed=0)


@pytest.fixture(scope="module")
def adapters(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("adapters")
    trainer = LoRATrainer(str(tiny_base))
    trainer.train(records=color_records(), config=CONFIG, output_dir=root / "colors")
    trainer.train(records=sum_records(), config=CONFIG, output_dir=root / "sums")
    return root / "colors", root / "sums"


def test_two_adapters_share_one_base_and_answer_differently(adapters: tuple[Path, Path]) -> None:
    server = GenerativeServer(max_adapters=4)
    colors, sums = adapters
    prompt = "What color is the sky?"
    text_a, n_prompt_a, n_out_a = server.generate(colors, prompt, max_new_tokens=12)
    text_b, n_prompt_b, n_out_b = server.generate(sums, prompt, max_new_tokens=12)
    assert text_a != text_b
    assert n_prompt_a == n_prompt_b > 0 and 0 < n_out_a <= 12 and 0 < n_out_b <= 12
    assert server.base_loads == 1 and server.adapter_loads == 2
    assert server.generate(colors, prompt, max_new_tokens=12)[0] == text_a
    assert server.adapter_loads == 2, "a cached adapter is switched to, not reloaded"


def test_least_recently_used_adapter_is_evicted(adapters: tuple[Path, Path]) -> None:
    server = GenerativeServer(max_adapters=1)
    colors, sums = adapters
    first = server.generate(colors, "Add 1 and 2.", max_new_tokens=6)[0]
    server.generate(sums, "Add 1 and 2.", max_new_tokens=6)
    assert server.adapter_evictions == 1 and list(server.loaded_adapters().values()) == [[str(sums)]]
    assert server.generate(colors, "Add 1 and 2.", max_new_tokens=6)[0] == first
    assert server.base_loads == 1 and server.adapter_loads == 3


def test_sampling_is_repeatable_with_a_seed(adapters: tuple[Path, Path]) -> None:
    server = GenerativeServer()
    one = server.generate(adapters[0], "Name a color.", max_new_tokens=8, temperature=1.0, seed=7)
    two = server.generate(adapters[0], "Name a color.", max_new_tokens=8, temperature=1.0, seed=7)
    assert one == two


def test_empty_and_too_long_inputs_are_refused(adapters: tuple[Path, Path]) -> None:
    server = GenerativeServer(max_input_tokens=64)
    with pytest.raises(InputError, match="prompt is empty"):
        server.generate(adapters[0], "  \n")
    with pytest.raises(InputError, match="input is too long: .* exceeds the model's limit of 64"):
        server.generate(adapters[0], "sky", max_new_tokens=60)
    with pytest.raises(InputError, match="max_new_tokens must be between 1 and 1024"):
        server.generate(adapters[0], "hi", max_new_tokens=0)
    with pytest.raises(InputError, match="temperature must be between 0 and 2"):
        server.generate(adapters[0], "hi", temperature=9)


def test_a_prompt_longer_than_training_saw_is_shortened_as_training_did(adapters: tuple[Path, Path]) -> None:
    import json

    from models_factory.trainers.generative import MIN_PROMPT_TOKENS

    budget = json.loads((adapters[0] / "generative.json").read_text())["max_prompt_tokens"]
    text, n_prompt, _ = GenerativeServer().generate(adapters[0], "What color is the sky? " + "sky " * 300)
    # Its end goes, down to the shortest prompt training kept (the question's first MIN_PROMPT_TOKENS tokens).
    assert text.strip() and 0 < n_prompt <= budget + MIN_PROMPT_TOKENS < 300
