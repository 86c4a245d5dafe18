#!/usr/bin/env python3
"""Parses an OpenMetrics scrape (stdin) with the reference Python client's parser and prints its
families as JSON: [{name, type, samples: [{name, labels, value}]}]. A scrape the parser refuses
exits 1 with the parser's error."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

try:
    families = [
        {
            "name": f.name,
            "type": f.type,
            "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples],
        }
        for f in text_string_to_metric_families(sys.stdin.read())
    ]
except Exception as e:  # the parser's own error, whatever its class
    sys.exit(f"the scrape does not parse: {e}")
print(json.dumps(families))
