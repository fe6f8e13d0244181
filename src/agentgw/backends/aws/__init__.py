"""AWS plumbing shared by AWS-backed backends (Bedrock today, AgentCore later).

* :mod:`.credentials` — credentials from botocore's provider chain (or explicit keys),
  resolved and refreshed off the event loop, ahead of expiry;
* :mod:`.sigv4` — SigV4 signing of an outgoing request for any service name.
"""

from .credentials import AwsCredentialSource, CredentialError, shared_source
from .sigv4 import sign_headers

__all__ = ["AwsCredentialSource", "CredentialError", "shared_source", "sign_headers"]
