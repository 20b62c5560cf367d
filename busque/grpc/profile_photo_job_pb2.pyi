import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_PENDING: _ClassVar[Status]
    STATUS_PROCESSING: _ClassVar[Status]
    STATUS_DONE: _ClassVar[Status]
    STATUS_FAILED: _ClassVar[Status]
STATUS_PENDING: Status
STATUS_PROCESSING: Status
STATUS_DONE: Status
STATUS_FAILED: Status

class JobStatusRequest(_message.Message):
    __slots__ = ("job_id", "wait_seconds")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    wait_seconds: int
    def __init__(self, job_id: _Optional[str] = ..., wait_seconds: _Optional[int] = ...) -> None: ...

class JobStatusResponse(_message.Message):
    __slots__ = ("job_id", "customer_id", "status", "original_photo_url", "generated_photo_url", "error", "created_at", "updated_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_PHOTO_URL_FIELD_NUMBER: _ClassVar[int]
    GENERATED_PHOTO_URL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    customer_id: str
    status: Status
    original_photo_url: str
    generated_photo_url: str
    error: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., status: _Optional[_Union[Status, str]] = ..., original_photo_url: _Optional[str] = ..., generated_photo_url: _Optional[str] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StatusStreamRequest(_message.Message):
    __slots__ = ("customer_id", "job_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    job_id: str
    def __init__(self, customer_id: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...
