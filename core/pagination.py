"""The API's page numbers, with an error that says what to do."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class Pages(PageNumberPagination):
    invalid_page_message = (
        "There is no page {page_number} here: pages are numbered from 1 up to the last one, which the previous page's "
        "'next' link leads to."
    )
