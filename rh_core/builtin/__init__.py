"""The core's own plugins: the ``local`` provider, the ``none``/``tls`` connections, the
package installers, the ``~``/``^`` name stores and the keyring secret backend. Each registers
through the same hooks as any installed plugin (see ``DEFAULT_PLUGINS`` in
:mod:`rh_core.plugin.registry`)."""
