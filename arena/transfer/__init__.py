"""Moving battles in and out: file formats (``formats``), the bulk importer (``importer``), the exporter."""
