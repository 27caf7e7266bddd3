"""Amazon Bedrock's multimodal embedding models through boto3's ``bedrock-runtime`` ``InvokeModel``,
each request and response as the Bedrock user guide documents it:

- Titan Multimodal Embeddings G1 (``amazon.titan-embed-image-v1``): ``{"inputImage": base64}`` or
  ``{"inputText": text}`` with ``embeddingConfig.outputEmbeddingLength``; answer ``{"embedding": [...]}``.
- Nova Multimodal Embeddings (``amazon.nova-2-multimodal-embeddings-v1:0``): ``taskType``
  ``SINGLE_EMBEDDING`` with ``singleEmbeddingParams`` (frames with purpose ``GENERIC_INDEX``, queries
  with ``IMAGE_RETRIEVAL``: the index holds images); answer ``{"embeddings": [{"embedding": [...]}]}``.
- TwelveLabs Marengo Embed 3.0 (``twelvelabs.marengo-embed-3-0-v1:0``, called through the region's
  inference profile where Bedrock offers only that: Europe): ``{"inputType": "image", "image": {"mediaSource":
  {"base64String": ...}}}`` or ``{"inputType": "text", "text": {"inputText": ...}}``; answer
  ``{"data": {"embedding": [...]}}`` (or a list of such objects). Its vectors are not compatible
  with Marengo 2.7's (which reached end of life on 2026-11-30).

Calls are bounded by ``tagging.aws.AwsCalls`` (credentials the boto3 way, AWS_ENDPOINT_URL honoured)."""

from __future__ import annotations

import json

import numpy as np

from tagging.aws import AwsCalls, aws_client
from tagging.embedders.base import Embedder, checked_vector, jpeg_base64, parsed_json
from tagging.taggers.base import CALL_DEADLINE, RetryBudget, TaggerError


class BedrockEmbedder(Embedder):
    """One ``InvokeModel`` per frame or query; a subclass builds the request bodies and reads the vector."""

    label = "Bedrock"

    def __init__(
        self,
        client=None,
        max_attempts: int = 4,
        timeout: float = 30.0,
        deadline: float = CALL_DEADLINE,
        budget: RetryBudget | None = None,
        backoff: float = 0.25,
    ) -> None:
        client = aws_client("bedrock-runtime", timeout) if client is None else client
        self._client = client
        self._calls = AwsCalls(client, self.label, max_attempts, deadline, budget, backoff)
        self.budget = self._calls.budget

    def invoke_id(self) -> str:
        """The id ``InvokeModel`` is called with (the model id, or the region's inference profile)."""
        return self.model_id

    def _invoke(self, body: dict) -> dict:
        reply = self._calls.call(
            "invoke_model",
            modelId=self.invoke_id(),
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
        )
        return parsed_json(reply.get("body"), self.label)

    def _vector(self, answer: dict) -> np.ndarray:
        try:
            values = self._values(answer)
        except (KeyError, IndexError, TypeError):
            message = answer.get("message") if isinstance(answer.get("message"), str) else None
            why = f": {message}" if message else ""
            raise TaggerError(f"{self.label} returned a response without its vector{why} (bad response).") from None
        return checked_vector(values, self.dim, self.label)

    def embed_image(self, image: np.ndarray) -> np.ndarray:
        return self._vector(self._invoke(self._image_body(jpeg_base64(image))))

    def embed_text(self, text: str) -> np.ndarray:
        return self._vector(self._invoke(self._text_body(text)))

    def _image_body(self, b64: str) -> dict:  # pragma: no cover - each model defines it
        raise NotImplementedError

    def _text_body(self, text: str) -> dict:  # pragma: no cover - each model defines it
        raise NotImplementedError

    def _values(self, answer: dict) -> object:  # pragma: no cover - each model defines it
        raise NotImplementedError


class TitanEmbedder(BedrockEmbedder):
    """Titan Multimodal Embeddings G1: 1024 numbers, English text."""

    service = "cloud:titan"
    label = "Bedrock Titan Multimodal Embeddings"
    model_id = "amazon.titan-embed-image-v1"
    version = "G1-1024"
    dim = 1024

    def _image_body(self, b64: str) -> dict:
        return {"inputImage": b64, "embeddingConfig": {"outputEmbeddingLength": self.dim}}

    def _text_body(self, text: str) -> dict:
        return {"inputText": text, "embeddingConfig": {"outputEmbeddingLength": self.dim}}

    def _values(self, answer: dict) -> object:
        return answer["embedding"]


class NovaEmbedder(BedrockEmbedder):
    """Nova Multimodal Embeddings: 1024 of its 3072 / 1024 / 384 / 256 numbers, multilingual text."""

    service = "cloud:nova"
    label = "Bedrock Nova Multimodal Embeddings"
    model_id = "amazon.nova-2-multimodal-embeddings-v1:0"
    version = "nova-multimodal-embed-v1-1024"
    dim = 1024

    def _params(self, purpose: str, **content) -> dict:
        params = {"embeddingPurpose": purpose, "embeddingDimension": self.dim, **content}
        task = {"schemaVersion": "nova-multimodal-embed-v1", "taskType": "SINGLE_EMBEDDING"}
        return {**task, "singleEmbeddingParams": params}

    def _image_body(self, b64: str) -> dict:
        image = {"format": "jpeg", "detailLevel": "STANDARD_IMAGE", "source": {"bytes": b64}}
        return self._params("GENERIC_INDEX", image=image)

    def _text_body(self, text: str) -> dict:
        return self._params("IMAGE_RETRIEVAL", text={"truncationMode": "END", "value": text})

    def _values(self, answer: dict) -> object:
        return answer["embeddings"][0]["embedding"]


class MarengoEmbedder(BedrockEmbedder):
    """TwelveLabs Marengo Embed 3.0: 512 numbers, 36 languages."""

    service = "cloud:marengo"
    label = "Bedrock TwelveLabs Marengo Embed 3.0"
    model_id = "twelvelabs.marengo-embed-3-0-v1:0"
    version = "3.0"
    dim = 512
    # where InvokeModel reaches it only through an inference profile (Europe (Ireland)); US East
    # (N. Virginia) and Asia Pacific (Seoul) serve the base model itself
    PROFILES = (("eu-", "eu."),)

    def invoke_id(self) -> str:
        region = str(getattr(getattr(self._client, "meta", None), "region_name", "") or "")
        prefix = next((p for r, p in self.PROFILES if region.startswith(r)), "")
        return prefix + self.model_id

    def _image_body(self, b64: str) -> dict:
        return {"inputType": "image", "image": {"mediaSource": {"base64String": b64}}}

    def _text_body(self, text: str) -> dict:
        return {"inputType": "text", "text": {"inputText": text}}

    def _values(self, answer: dict) -> object:
        data = answer["data"]
        return (data[0] if isinstance(data, list) else data)["embedding"]
