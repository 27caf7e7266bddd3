"""Azure AI Vision multimodal embeddings (model version 2023-04-15, multilingual), through
azure-core's pipeline as the Image Retrieval REST API documents it:

  POST {endpoint}/computervision/retrieval:vectorizeImage?api-version=2024-02-01&model-version=2023-04-15
       Content-Type: application/octet-stream, the image bytes
  POST {endpoint}/computervision/retrieval:vectorizeText?api-version=2024-02-01&model-version=2023-04-15
       Content-Type: application/json, {"text": "..."}
  answer {"modelVersion": "2023-04-15", "vector": [1024 numbers]}

The key (AZURE_VISION_KEY) goes in the ``Ocp-Apim-Subscription-Key`` header to AZURE_VISION_ENDPOINT
alone: no redirect is followed, retries are bounded and share the run's budget, Retry-After is
honoured up to a cap, and nothing is logged. Azure AI Vision Image Analysis 4.0, these embeddings
included, is deprecated and retires on 2028-09-25."""

from __future__ import annotations

import os

import numpy as np

from tagging.embedders.base import MAX_IMAGE_BYTES, MAX_IMAGE_SIDE, Embedder, checked_vector, parsed_json
from tagging.taggers.azure import RETRY_AFTER_CAP, capped_retry_policy, retry_after
from tagging.taggers.base import CALL_DEADLINE, FatalTaggerError, RetryBudget, TaggerError, jpeg_under, within_deadline

API_VERSION = "2024-02-01"
MODEL_VERSION = "2023-04-15"
RETRIED = frozenset({"GET", "HEAD", "POST"})  # azure-core retries no POST on throttling unless told


class AzureEmbedder(Embedder):
    """One ``vectorizeImage`` per frame, one ``vectorizeText`` per query."""

    service = "cloud:azure"
    label = "Azure AI Vision multimodal embeddings"
    model_id = "azure-vision-multimodal"
    version = MODEL_VERSION
    dim = 1024

    def __init__(
        self,
        endpoint: str | None = None,
        key: str | None = None,
        retries: int = 3,
        timeout: float = 30.0,
        backoff: float = 0.5,
        retry_after_cap: float = RETRY_AFTER_CAP,
        deadline: float = CALL_DEADLINE,
        budget: RetryBudget | None = None,
        transport=None,
    ) -> None:
        from azure.core import PipelineClient  # the Azure SDK loads only when Azure is used
        from azure.core.credentials import AzureKeyCredential  # the Azure SDK loads only when Azure is used
        from azure.core.pipeline.policies import (  # the Azure SDK loads only when Azure is used
            AzureKeyCredentialPolicy,
            HeadersPolicy,
            RedirectPolicy,
            RequestIdPolicy,
            UserAgentPolicy,
        )

        endpoint = endpoint or os.environ.get("AZURE_VISION_ENDPOINT")
        key = key or os.environ.get("AZURE_VISION_KEY")
        if not endpoint or not key:
            raise FatalTaggerError("Azure AI Vision needs AZURE_VISION_ENDPOINT and AZURE_VISION_KEY to be set.")
        if not endpoint.startswith(("https://", "http://")):
            raise FatalTaggerError(f"AZURE_VISION_ENDPOINT is not a usable URL ({endpoint[:80]!r}).")
        self.deadline, self.retry_after_cap, self.timeout = deadline, retry_after_cap, timeout
        self.budget = budget or RetryBudget()
        policies = [
            RequestIdPolicy(),
            HeadersPolicy(),
            UserAgentPolicy(sdk_moniker="frame-search-lab"),
            # the key is added to every request the pipeline sends, a redirected one too: a 3xx to another
            # host would carry it there, so no redirect is followed
            RedirectPolicy(permit_redirects=False),
            capped_retry_policy(retries, backoff, retry_after_cap, self.budget),
            AzureKeyCredentialPolicy(AzureKeyCredential(key), "Ocp-Apim-Subscription-Key"),
        ]
        self._base = endpoint.rstrip("/")
        self._client = PipelineClient(self._base, policies=policies, transport=transport)

    def embed_image(self, image: np.ndarray) -> np.ndarray:
        data = jpeg_under(image, MAX_IMAGE_BYTES, MAX_IMAGE_SIDE)
        return self._vectorize("vectorizeImage", data, "application/octet-stream")

    def embed_text(self, text: str) -> np.ndarray:
        return self._vectorize("vectorizeText", {"text": text}, "application/json")

    def _vectorize(self, operation: str, body, content_type: str) -> np.ndarray:
        from azure.core.exceptions import (  # the Azure SDK loads only when Azure is used
            ServiceRequestError,
            ServiceResponseError,
        )
        from azure.core.rest import HttpRequest  # the Azure SDK loads only when Azure is used

        url = f"{self._base}/computervision/retrieval:{operation}"
        params = {"api-version": API_VERSION, "model-version": MODEL_VERSION}
        if isinstance(body, dict):
            request = HttpRequest("POST", url, params=params, json=body)
        else:
            request = HttpRequest("POST", url, params=params, content=body, headers={"Content-Type": content_type})

        def send():
            response = self._client.send_request(  # a vectorize POST changes nothing: retried as a GET is
                request, connection_timeout=10, read_timeout=self.timeout, retry_on_methods=RETRIED
            )
            response.read()  # the whole body, within the call's deadline
            return response

        try:
            response = within_deadline(send, self.deadline, "Azure")
        except (ServiceRequestError, ServiceResponseError) as e:
            why = f"Azure could not be reached or timed out ({type(e).__name__})."
            raise TaggerError(why, unreachable=True) from None
        self._check_status(response)
        answer = parsed_json(response.content, self.label)
        served = answer.get("modelVersion")
        if served is not None and served != MODEL_VERSION:
            raise TaggerError(f"{self.label} answered with model version {served!r}, not {MODEL_VERSION}; not stored.")
        return checked_vector(answer.get("vector"), self.dim, self.label)

    def _check_status(self, response) -> None:
        status = response.status_code
        if status in (401, 403):
            raise FatalTaggerError(
                f"Azure rejected the credentials (HTTP {status}): check AZURE_VISION_KEY "
                "and that AZURE_VISION_ENDPOINT is the resource's endpoint."
            )
        if status == 429:
            wait = retry_after(response)
            if wait is not None and wait > self.retry_after_cap:
                raise TaggerError(
                    f"Azure is throttling and asks to wait {wait:g} s (more than the {self.retry_after_cap:g} s "
                    "waited here); try again later."
                )
            raise TaggerError("Azure kept throttling (HTTP 429) after retries; try again later.")
        if 300 <= status < 400:
            raise TaggerError(
                f"Azure answered with a redirect (HTTP {status}), which is not followed so the key goes nowhere "
                "else: check AZURE_VISION_ENDPOINT."
            )
        if status >= 400:
            try:
                code = (parsed_json(response.content, self.label).get("error") or {}).get("code")
            except (TaggerError, AttributeError):
                code = None
            raise TaggerError(f"Azure answered HTTP {status}{f' ({code})' if code else ''}.")
