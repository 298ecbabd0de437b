"""pytest plugin: collects model specs (``model_specs/*.yaml``) into FreqReX audit test items."""
