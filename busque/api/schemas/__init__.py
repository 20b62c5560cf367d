"""What busque's API answers, as pydantic models for the OpenAPI document (busque/api/openapi.py).

The routes build their answers as plain dicts (busque/api/views.py); these models only describe
them, and tests/test_openapi_contract.py checks every real answer of the test suite against them.
"""
