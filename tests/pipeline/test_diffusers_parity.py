"""The pipeline's SDXL logic against diffusers' SDXL pipelines on the same tiny torch models.

An engine here wraps small random diffusers / transformers modules behind Apple's Core ML I/O
(`input_ids` -> `hidden_embeds` (penultimate layer) + `pooled_outputs`; UNet `encoder_hidden_states`
as (B, C, 1, S); VAE `z` -> `image`, `x` -> `latent` moments). diffusers' own
`StableDiffusionXLPipeline` / `StableDiffusionXLImg2ImgPipeline` then run the very same modules, so
any difference is in the pipeline logic: tokenization, conditioning, time ids, guidance, scheduling,
refiner hand-over, img2img noising and latent scaling.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.engines.base import TensorSpec
from bench.models.variant import ModelSet
from bench.pipeline import GenerationRequest, SDXLPipeline
from bench.pipeline.latents import initial_noise, make_rng
from tests.pipeline.fakes import write_vocab

pytestmark = [
    pytest.mark.torch,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]
torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

LATENT = 8
SIZE = 8 * LATENT
PROMPT = "a photo of an astronaut riding a horse on mars"
NEGATIVE = "blurry, low quality"


def _spec(name, shape, dtype=np.float32):
    return TensorSpec(name, tuple(shape), np.dtype(dtype))


class TorchModel:
    """One torch module behind Apple's I/O names."""

    def __init__(self, path: Path, kind: str, module, inputs, outputs):
        self.path, self.kind, self.module = path, kind, module
        self.input_specs, self.output_specs = inputs, outputs

    @torch.no_grad()
    def predict(self, inputs):
        t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()}
        if self.kind in ("text_encoder", "text_encoder_2"):
            out = self.module(t["input_ids"].long(), output_hidden_states=True)
            pooled = out[0] if self.kind == "text_encoder_2" else out.pooler_output
            return {"hidden_embeds": out.hidden_states[-2].numpy(), "pooled_outputs": pooled.numpy()}
        if self.kind in ("unet", "refiner"):
            hidden = t["encoder_hidden_states"][:, :, 0, :].transpose(1, 2)
            added = {"text_embeds": t["text_embeds"], "time_ids": t["time_ids"]}
            return {"noise_pred": self.module(t["sample"], t["timestep"], hidden, added_cond_kwargs=added).sample.numpy()}
        if self.kind == "vae_decoder":
            return {"image": self.module.decode(t["z"]).sample.numpy()}
        if self.kind == "vae_encoder":  # Apple's encoder: quant_conv(encoder(x)) = (mean, logvar)
            return {"latent": self.module.quant_conv(self.module.encoder(t["x"])).numpy()}
        raise ValueError(self.kind)

    def close(self):
        pass


class TorchEngine:
    name, compute_units, separate_compile = "torch", ("CPU",), False

    def __init__(self, modules):
        self.modules = modules

    def is_available(self):
        return True

    def compile(self, path, compute_unit):
        return Path(path)

    def _io(self, kind):
        te = {"text_encoder": self.modules["text_encoder"], "text_encoder_2": self.modules["text_encoder_2"]}
        if kind in te:
            config = te[kind].config
            pooled = config.projection_dim if kind == "text_encoder_2" else config.hidden_size
            return ((_spec("input_ids", (1, 77), np.int32),),
                    (_spec("hidden_embeds", (1, 77, config.hidden_size)), _spec("pooled_outputs", (1, pooled))))
        if kind in ("unet", "refiner"):
            config = self.modules[kind].config
            time_ids = 6 if kind == "unet" else 5
            embeds = config.projection_class_embeddings_input_dim - time_ids * config.addition_time_embed_dim
            return ((_spec("sample", (2, 4, LATENT, LATENT)), _spec("timestep", (2,)),
                     _spec("encoder_hidden_states", (2, config.cross_attention_dim, 1, 77)),
                     _spec("time_ids", (2, time_ids)), _spec("text_embeds", (2, embeds))),
                    (_spec("noise_pred", (2, 4, LATENT, LATENT)),))
        if kind == "vae_decoder":
            return (_spec("z", (1, 4, LATENT, LATENT)),), (_spec("image", (1, 3, SIZE, SIZE)),)
        return (_spec("x", (1, 3, SIZE, SIZE)),), (_spec("latent", (1, 8, LATENT, LATENT)),)

    def describe(self, path):
        return self._io(json.loads(Path(path).read_text())["kind"])

    def load(self, path, compute_unit, **options):
        kind = json.loads(Path(path).read_text())["kind"]
        module = self.modules["vae" if kind.startswith("vae") else kind]
        return TorchModel(Path(path), kind, module, *self._io(kind))


@pytest.fixture(scope="module")
def modules():
    torch.manual_seed(0)
    clip = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 37,
                "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    text_encoder = transformers.CLIPTextModel(transformers.CLIPTextConfig(vocab_size=1000, hidden_act="quick_gelu", **clip))
    text_encoder_2 = transformers.CLIPTextModelWithProjection(
        transformers.CLIPTextConfig(vocab_size=1000, hidden_act="gelu", projection_dim=24, **clip)
    )
    unet_config = {
        "sample_size": LATENT, "in_channels": 4, "out_channels": 4, "block_out_channels": (32, 64), "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"), "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "attention_head_dim": (2, 4), "use_linear_projection": True, "addition_embed_type": "text_time",
        "addition_time_embed_dim": 8, "transformer_layers_per_block": (1, 1), "norm_num_groups": 8,
    }
    unet = diffusers.UNet2DConditionModel(cross_attention_dim=64, projection_class_embeddings_input_dim=6 * 8 + 24, **unet_config)
    refiner = diffusers.UNet2DConditionModel(cross_attention_dim=32, projection_class_embeddings_input_dim=5 * 8 + 24, **unet_config)
    vae = diffusers.AutoencoderKL(
        block_out_channels=[8, 8, 8, 8], in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, norm_num_groups=4, sample_size=SIZE,
        scaling_factor=0.13025, layers_per_block=1,
    )
    with torch.no_grad():  # a near-deterministic posterior (logvar = -30), so both sides sample its mean
        vae.quant_conv.weight[4:] = 0
        vae.quant_conv.bias[4:] = -30.0
    for module in (text_encoder, text_encoder_2, unet, refiner, vae):
        module.eval()
    return {"text_encoder": text_encoder, "text_encoder_2": text_encoder_2, "unet": unet, "refiner": refiner, "vae": vae}


@pytest.fixture(scope="module")
def setup(modules, tmp_path_factory):
    folder = tmp_path_factory.mktemp("torch_set")
    files = {}
    files["vocab"], files["merges"] = write_vocab(folder / "tokenizer")
    for part in ("text_encoder", "text_encoder_2", "unet", "refiner", "vae_decoder", "vae_encoder"):
        files[part] = folder / f"{part}.json"
        files[part].write_text(json.dumps({"kind": part}))
    model_set = ModelSet("torch-tiny", folder, files, SIZE, "ORIGINAL", "float32")
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), model_max_length=77)
    tokenizer_2 = transformers.CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), model_max_length=77, pad_token="!")
    return model_set, TorchEngine(modules), tokenizer, tokenizer_2


def _scheduler(name):
    from bench.pipeline.request import SCHEDULERS
    from bench.pipeline.schedulers import SDXL_SCHEDULER_CONFIG

    cls = getattr(diffusers, SCHEDULERS[name])
    known = set(cls().config)  # keys the class takes
    return cls(**{k: v for k, v in SDXL_SCHEDULER_CONFIG.items() if k in known})


def _noise(seed):
    return torch.from_numpy(initial_noise(make_rng(seed), (1, 4, LATENT, LATENT)))


def _close(ours, theirs, tol=2e-4):
    scale = max(1.0, float(np.abs(theirs).max()))
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("scheduler", ["euler", "dpmpp", "pndm"])
@pytest.mark.parametrize("guidance", [5.0, 1.0])
def test_text_to_image_matches_diffusers(setup, modules, scheduler, guidance):
    model_set, engine, tokenizer, tokenizer_2 = setup
    request = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, steps=5, scheduler=scheduler,
                                guidance_scale=guidance, seed=3)
    ours = SDXLPipeline(model_set, engine, "CPU").generate(request)
    pipe = diffusers.StableDiffusionXLPipeline(
        vae=modules["vae"], text_encoder=modules["text_encoder"], text_encoder_2=modules["text_encoder_2"],
        tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=modules["unet"], scheduler=_scheduler(scheduler),
    )
    pipe.set_progress_bar_config(disable=True)
    kwargs = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "num_inference_steps": 5, "guidance_scale": guidance,
                  "height": SIZE, "width": SIZE, "latents": _noise(3)}
    latents = pipe(**kwargs, output_type="latent").images.numpy()
    _close(ours.latents, latents)
    image = pipe(**kwargs, output_type="np").images[0]
    _close(np.clip(ours.decoded[0] / 2 + 0.5, 0, 1).transpose(1, 2, 0), image)
    assert np.abs(ours.image.astype(int) - np.round(image * 255).astype(int)).max() <= 1


def test_base_plus_refiner_matches_diffusers_ensemble(setup, modules):
    model_set, engine, tokenizer, tokenizer_2 = setup
    request = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, steps=10, refiner=True,
                                high_noise_frac=0.7, seed=5)
    ours = SDXLPipeline(model_set, engine, "CPU").generate(request)
    assert ours.refiner_calls == 3
    base = diffusers.StableDiffusionXLPipeline(
        vae=modules["vae"], text_encoder=modules["text_encoder"], text_encoder_2=modules["text_encoder_2"],
        tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=modules["unet"], scheduler=_scheduler("euler"),
    )
    refiner = diffusers.StableDiffusionXLImg2ImgPipeline(
        vae=modules["vae"], text_encoder=None, text_encoder_2=modules["text_encoder_2"], tokenizer=None,
        tokenizer_2=tokenizer_2, unet=modules["refiner"], scheduler=_scheduler("euler"), requires_aesthetics_score=True,
    )
    for pipe in (base, refiner):
        pipe.set_progress_bar_config(disable=True)
    handoff = base(prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=10, denoising_end=0.7,
                   height=SIZE, width=SIZE, latents=_noise(5), output_type="latent").images
    latents = refiner(prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=10, denoising_start=0.7,
                      image=handoff, output_type="latent").images.numpy()
    _close(ours.latents, latents)


def test_img2img_matches_diffusers(setup, modules, monkeypatch):
    import diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_img2img as img2img_module
    from PIL import Image

    model_set, engine, tokenizer, tokenizer_2 = setup
    rng = np.random.default_rng(0)
    pixels = np.clip(rng.normal(128, 40, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    request = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, steps=8, init_image=pixels, strength=0.6, seed=9)
    ours = SDXLPipeline(model_set, engine, "CPU").generate(request)
    assert ours.steps == 4
    # Our noise is the first draw of the seed; hand diffusers the same noise for its add_noise.
    monkeypatch.setattr(img2img_module, "randn_tensor", lambda shape, **kw: _noise(9).reshape(shape))
    pipe = diffusers.StableDiffusionXLImg2ImgPipeline(
        vae=modules["vae"], text_encoder=modules["text_encoder"], text_encoder_2=modules["text_encoder_2"],
        tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=modules["unet"], scheduler=_scheduler("euler"),
        requires_aesthetics_score=False,
    )
    pipe.set_progress_bar_config(disable=True)
    latents = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, image=Image.fromarray(pixels), strength=0.6,
                   num_inference_steps=8, output_type="latent").images.numpy()
    _close(ours.latents, latents)
