"""Clients for the ao units. Units talk to one another only through these, over HTTP
(or an in-process ASGI transport inside ``pyao up``), never by importing each other."""

from pyao.client.cu import ComputeClient
from pyao.client.gateway import GatewayClient
from pyao.client.locate import SchedulerLocator
from pyao.client.messenger import MessengerClient
from pyao.client.scheduler import SchedulerClient

__all__ = ["ComputeClient", "GatewayClient", "MessengerClient", "SchedulerClient", "SchedulerLocator"]
