<%@ page contentType="text/plain" import="java.io.*" %><%
    // DELIBERATELY VULNERABLE (command injection through ?file=; an attack target, never deploy).
    String f = request.getParameter("file");
    ProcessBuilder pb = new ProcessBuilder("sh", "-c", "wc -c /srv/data/" + (f == null ? "a.txt" : f));
    pb.redirectErrorStream(true);
    Process p = pb.start();
    String text = new String(p.getInputStream().readAllBytes());
    p.waitFor();
    out.print(text);
%>
