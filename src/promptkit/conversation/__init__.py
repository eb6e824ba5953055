"""The two drivers, side by side: Conversation + Stream, AsyncConversation + AsyncStream.

``core`` holds what both share (state, variables, tools, turn planning); ``stream`` the stream
facade both stream classes build on; ``sync_driver`` and ``async_driver`` run the engine's turn
generator with blocking I/O and with asyncio (twins: same methods, same chunks, tested so);
``opening`` and ``resuming`` are ``promptkit.open``/``resume`` and their async forms;
``store_binding`` saves a conversation's metadata with each turn on a shared store.

May import everything below it: ``engine``, ``tools``, ``providers``, ``transport``, ``stores``,
``pack``; never ``cli`` or ``server``.
"""
