"""Calls to an AWS service through its boto3 client, bounded as every paid call here is: a few
attempts with capped backoff for throttling, server errors and timeouts, within a retry budget
shared by the run and within the call's total deadline (botocore's own retries, per call and
unbounded in sum, made 72 requests for 6 frames of a throttling endpoint, so they are off).
Region and credentials come the standard boto3 way (environment, profile, instance role) and
AWS_ENDPOINT_URL is honoured as boto3 does; botocore follows no redirects, so a signed request goes
to the endpoint alone. Rekognition's tagger and Bedrock's embedders share this."""

from __future__ import annotations

from tagging.taggers.base import CALL_DEADLINE, BoundedCalls, FatalTaggerError, Retryable, RetryBudget, TaggerError

AUTH_CODES = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "AccessDeniedException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
}
THROTTLE_CODES = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "ServiceQuotaExceededException",
}


class AwsCalls(BoundedCalls):
    """One boto3 client's calls, bounded (``BoundedCalls``); every failure is one TaggerError
    sentence naming ``label`` (credentials rejected: FatalTaggerError, the run stops)."""

    def __init__(
        self,
        client,
        label: str,
        max_attempts: int = 4,
        deadline: float = CALL_DEADLINE,
        budget: RetryBudget | None = None,
        backoff: float = 0.25,
    ) -> None:
        super().__init__(label, max_attempts, deadline, budget, backoff)
        self.client = client

    def call(self, op: str, **kwargs) -> dict:
        """``client.op(**kwargs)``, retried within the budget and the deadline."""
        return self.run(op, lambda: self._attempt(op, **kwargs))

    def _attempt(self, op: str, **kwargs) -> dict:
        from botocore.exceptions import (  # the AWS SDK loads only when an AWS service is used
            BotoCoreError,
            ClientError,
            ConnectionError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )
        from botocore.parsers import ResponseParserError  # the AWS SDK loads only when an AWS service is used

        label = self.label
        try:
            reply = getattr(self.client, op)(**kwargs)
            body = reply.get("body") if isinstance(reply, dict) else None
            if hasattr(body, "read"):  # a streamed body (InvokeModel's) is read within the call's deadline too
                reply = {**reply, "body": body.read()}
            return reply
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in AUTH_CODES or status in (401, 403):
                raise FatalTaggerError(
                    f"AWS rejected the credentials ({code or status}): check the access key, secret and region."
                ) from None
            if code in THROTTLE_CODES or status == 429:
                throttled = f"{label} kept throttling ({code or status}) after retries; try again later."
                raise Retryable(throttled) from None
            message = e.response.get("Error", {}).get("Message", "")
            error = Retryable if (status or 0) >= 500 else TaggerError
            raise error(f"{label} {op} failed: {code or status} {message}".strip()) from None
        except (ReadTimeoutError, ConnectTimeoutError, EndpointConnectionError, ConnectionError) as e:
            unreachable = f"{label} could not be reached or timed out ({type(e).__name__})."
            raise Retryable(unreachable, unreachable=True) from None
        except (ResponseParserError, AttributeError, TypeError, ValueError):  # botocore choking on a junk body
            raise TaggerError(f"{label} {op} returned a response that is not valid JSON (bad response).") from None
        except BotoCoreError as e:
            raise TaggerError(f"{label} {op} failed ({type(e).__name__}).") from None


def aws_client(service: str, timeout: float):
    """A boto3 client of ``service``; every configuration problem becomes one FatalTaggerError sentence."""
    import boto3  # the AWS SDK loads only when an AWS service is used
    from botocore.config import Config  # the AWS SDK loads only when an AWS service is used

    # the AWS SDK loads only when an AWS service is used
    from botocore.exceptions import BotoCoreError, NoRegionError, ProfileNotFound

    try:
        session = boto3.Session()
        if session.get_credentials() is None:
            raise FatalTaggerError(
                "AWS credentials not found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE, as for any boto3 program."
            )
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},  # retried in AwsCalls.call
            connect_timeout=10,
            read_timeout=timeout,
        )
        return session.client(service, config=config)
    except ProfileNotFound as e:
        raise FatalTaggerError(f"AWS profile not found ({e.kwargs.get('profile')}): check AWS_PROFILE.") from None
    except NoRegionError:
        raise FatalTaggerError("AWS region not set: set AWS_DEFAULT_REGION (or a region in your profile).") from None
    except ValueError as e:  # botocore: invalid region string or endpoint URL
        raise FatalTaggerError(
            f"AWS configuration is invalid: {e}. Check AWS_DEFAULT_REGION and AWS_ENDPOINT_URL."
        ) from None
    except BotoCoreError as e:
        raise FatalTaggerError(f"AWS configuration problem: {e}") from None
