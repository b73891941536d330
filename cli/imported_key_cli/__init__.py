"""The operator's command line for keys imported-key-cdk manages (``imported-keys``)."""
