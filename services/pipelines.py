"""The document-processing pipeline: upload to S3, extract with Veryfi, store, summarise.

Discovered like any installed app's `pipelines.py`; docs/DOCUMENTS.md explains each step.
"""

from __future__ import annotations

from pipelines import Pipeline, step
from services.steps import s3_upload, store_results, summarize, veryfi_process

document_processing = Pipeline(
    "document-processing",
    description="Upload a document to S3, extract it with Veryfi, store the result",
    upload_field="filePath",
    metadata_example={"filePath": "/path/to/receipt.pdf"},
    # One Veryfi account for every worker: at most ORBIT_VERYFI_RATE_LIMIT claims (default
    # 20/minute) over all of them; each run calls Veryfi once (docs/FLOW-CONTROL.md).
    rate_limit="veryfi",
    steps=[
        step("s3-upload", s3_upload, max_retries=3, timeout=60),
        step("veryfi-process", veryfi_process, max_retries=2, timeout=180),
        step("store-results", store_results, max_retries=2, timeout=30),
        step("summary", summarize, timeout=30),
    ],
)
