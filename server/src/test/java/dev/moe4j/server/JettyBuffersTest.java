package dev.moe4j.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.io.ManagedSelector;
import org.eclipse.jetty.io.SocketChannelEndPoint;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.VirtualThreads;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The Jetty server {@link OpenAiServer} builds ({@link OpenAiServer#jetty}, {@link OpenAiServer#http}) keeps one
 * connection's bytes out of another's when a request line too long for the header buffer (414) meets a slow thread.
 * The interleaving a loaded machine produced once under {@code ./moe4j fuzz http} is forced here; with Jetty's pooled
 * buffers it leaves the tail of the long request line in a pooled buffer, read by the next connection as the start of
 * its request (answered 505) or written in front of a later answer (what the fuzzer saw).
 */
@Timeout(60)
class JettyBuffersTest {
    private static final String LONG_PATH = "/" + "a".repeat(17_020); // the fuzzer's: two 8 KB buffers and a tail

    @Test
    void theTailOfARequestLineTooLongNeverReachesAnotherConnection() throws Exception {
        CountDownLatch tailBeingRead = new CountDownLatch(1), tailRead = new CountDownLatch(1);
        AtomicBoolean armed = new AtomicBoolean(true), heldBack = new AtomicBoolean();
        // The thread that parsed the bad request line hands the 414 to a virtual thread and goes on to release its
        // request buffer: here it is held back (as a preempted thread would be) until the answer is written and the
        // connection is read again, into that same buffer, on a third thread.
        Executor virtual = VirtualThreads.getNamedVirtualThreadsExecutor("jetty-buffers-test-");
        Executor holdingBack = task -> {
            virtual.execute(task);
            if (tailBeingRead.getCount() > 0
                    && StackWalker.getInstance()
                            .walk(frames ->
                                    frames.anyMatch(f -> f.getMethodName().equals("badMessage")))) {
                heldBack.set(true);
                await(tailBeingRead);
            }
        };
        QueuedThreadPool threads = new QueuedThreadPool();
        threads.setVirtualThreadsExecutor(holdingBack);
        Server server = OpenAiServer.jetty(threads);
        ServerConnector connector = new ServerConnector(server, OpenAiServer.http()) {
            @Override
            protected SocketChannelEndPoint newEndPoint(
                    SocketChannel channel, ManagedSelector selector, SelectionKey key) {
                return new SocketChannelEndPoint(channel, selector, key, getScheduler()) {
                    @Override
                    public int fill(ByteBuffer buffer) throws IOException {
                        // the read after the 414 (output shut down): it waits until the parsing thread has released
                        // the buffer it reads into
                        if (!isOutputShutdown() || !armed.compareAndSet(true, false)) return super.fill(buffer);
                        tailBeingRead.countDown();
                        try {
                            Thread.sleep(200);
                            return super.fill(buffer);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                            throw new IOException(e);
                        } finally {
                            tailRead.countDown();
                        }
                    }
                };
            }
        };
        connector.setHost("127.0.0.1");
        connector.setPort(0);
        server.addConnector(connector);
        server.setHandler(new Handler.Abstract() {
            @Override
            public boolean handle(Request request, Response response, Callback callback) throws Exception {
                try (InputStream in = Content.Source.asInputStream(request)) {
                    in.readAllBytes();
                }
                response.write(true, ByteBuffer.wrap("ok".getBytes(StandardCharsets.US_ASCII)), callback);
                return true;
            }
        });
        server.start();
        try {
            int port = connector.getLocalPort();
            assertTrue(exchange(port, "GET " + LONG_PATH, "").startsWith("HTTP/1.1 414 "));
            await(tailRead);
            for (int i = 0; i < 4; i++) {
                String answer = exchange(port, "POST /v1/completions", "{}");
                assertTrue(
                        answer.startsWith("HTTP/1.1 200 "),
                        "answer " + i + " after the 414 begins "
                                + answer.substring(0, Math.min(120, answer.length()))
                                        .replaceAll("a{20,}", "a…")
                                        .replace("\r\n", "\\r\\n"));
                assertTrue(answer.endsWith("\r\n\r\nok"), answer);
            }
            assertEquals(0, tailBeingRead.getCount(), "the forced interleaving did not happen");
            // Jetty's parsing thread is recognized by the method on its stack: a Jetty that renamed it would leave
            // the interleaving unforced
            assertTrue(heldBack.get(), "no thread handing off a 414 was held back (Jetty's badMessage not found)");
        } finally {
            server.stop();
        }
    }

    /** One request on a connection of its own ({@code Connection: close}), and the whole answer. */
    private static String exchange(int port, String requestLine, String body) throws IOException {
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 10_000);
            socket.setSoTimeout(10_000);
            byte[] content = body.getBytes(StandardCharsets.UTF_8);
            String head = requestLine + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                    + (content.length > 0
                            ? "Content-Type: application/json\r\nContent-Length: " + content.length + "\r\n"
                            : "")
                    + "\r\n";
            OutputStream out = socket.getOutputStream();
            out.write(head.getBytes(StandardCharsets.UTF_8));
            out.write(content);
            out.flush();
            return new String(socket.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1);
        }
    }

    private static void await(CountDownLatch latch) {
        try {
            if (!latch.await(10, TimeUnit.SECONDS)) throw new IllegalStateException("the forced interleaving stalled");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }
}
