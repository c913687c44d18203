"""config.py against config.schema.json (the TS zod schema, exported by export-config-schema.ts)."""
import copy
import json
import os
import unittest

from memmamba_ref.config import schema_mismatches

SCHEMA = os.path.join(os.path.dirname(__file__), "..", "config.schema.json")


class ConfigSchemaTest(unittest.TestCase):
    def setUp(self):
        with open(SCHEMA, encoding="utf-8") as f:
            self.schema = json.load(f)

    def test_python_fields_equal_the_ts_schema(self):
        self.assertEqual(schema_mismatches(self.schema), [])

    def test_a_drift_is_reported_by_field(self):
        s = copy.deepcopy(self.schema)
        s["properties"]["memory"]["properties"]["poolSize"]["default"] = 51
        s["properties"]["memory"]["properties"]["crossLayer"]["properties"]["newField"] = {"type": "integer"}
        s["properties"]["kind"]["enum"].append("rwkv")
        msgs = schema_mismatches(s)
        self.assertTrue(any(m.startswith("memory.poolSize: default 51") for m in msgs), msgs)
        self.assertTrue(any(m.startswith("memory.crossLayer.newField: in the TS schema") for m in msgs), msgs)
        self.assertTrue(any(m.startswith("kind: enum") for m in msgs), msgs)


if __name__ == "__main__":
    unittest.main()
