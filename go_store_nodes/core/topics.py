"""Absolute names of the node graph's output topics (docs/topics.md).

Read by the evaluation (which scores them) and by the bag tools (which record them), so
they are written once, here.
"""

DETECTIONS_TOPIC = '/people/detections'
TRACKS_TOPIC = '/people/tracks'
SKELETONS_TOPIC = '/people/skeletons'
SHELF_EVENTS_TOPIC = '/shelves/events'
CART_EVENTS_TOPIC = '/cart/events'
ASSOCIATION_WATERMARK_TOPIC = '/association/watermark'
VISITS_TOPIC = '/visits'
RECEIPTS_TOPIC = '/receipts'
CHECK_IN_RESULT_TOPIC = '/gates/check_in_result'
CALIBRATION_STATUS_TOPIC = '/calibration/status'
PRODUCT_OBSERVATIONS_TOPIC = '/products/observations'
MARKERS_TOPIC = '/visualization/markers'
