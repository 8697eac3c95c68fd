"""Operator page core: staff sign-in, bounded store state, review evidence, the web app."""

from .auth import (
    CredentialError,
    hash_password,
    parse_staff_credentials,
    StaffDirectory,
    verify_password,
)
from .ledger_views import CartLineView, CartView, Ledger, LedgerUnavailableError, ReviewView
from .state import (
    CartEventRecord,
    ColorFrame,
    Evidence,
    InputRejectedError,
    OperatorConfig,
    OperatorState,
    TrackPoint,
    VisitRecord,
)
from .web import create_app, HttpServer, WebSettings

__all__ = ['CartEventRecord', 'CartLineView', 'CartView', 'ColorFrame', 'create_app',
           'CredentialError', 'Evidence', 'hash_password', 'HttpServer', 'InputRejectedError',
           'Ledger', 'LedgerUnavailableError', 'OperatorConfig', 'OperatorState',
           'parse_staff_credentials', 'ReviewView', 'StaffDirectory', 'TrackPoint',
           'verify_password', 'VisitRecord', 'WebSettings']
