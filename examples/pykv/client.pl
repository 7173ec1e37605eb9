#!/usr/bin/perl
# The pykv client for faultline, in Perl with core modules only (JSON::PP, HTTP::Tiny).
# It speaks faultline's client protocol 1 (docs/your-system.md): one JSON object per line on
# stdin, one answer per line on stdout, anything for people on stderr.
#
# The rule it keeps: answer "fail" only when the operation certainly had no effect, "info"
# when it may have had one.
use strict;
use warnings;
use JSON::PP;
use HTTP::Tiny;

$| = 1;    # one line out per line in, unbuffered
my $json = JSON::PP->new->canonical->allow_nonref;
my ($process, $base);
# Below faultline's per-operation timeout, so a slow node is our "info", not a kill.
my $http = HTTP::Tiny->new(timeout => 1.5, keep_alive => 0);

sub send_msg { print $json->encode($_[0]), "\n"; }

sub invoke {
    my ($op) = @_;
    my $res = $http->post("$base/op", {
        content => $json->encode({ f => $op->{f}, key => $op->{key}, value => $op->{value} }),
        headers => { 'Content-Type' => 'application/json' },
    });
    if ($res->{status} == 599) {
        # HTTP::Tiny's own error: refused means the request never left; else it may have.
        return { type => 'fail', error => 'connection-refused' }
          if $res->{content} =~ /Connection refused/;
        (my $why = $res->{content}) =~ s/\s+$//;
        return { type => 'info', error => "transport: $why" };
    }
    my $body = eval { $json->decode($res->{content}) } // {};
    return { type => 'ok', value => $body->{value} } if $res->{status} == 200 && $body->{ok};
    my $error = $body->{error} // "http $res->{status}";
    return { type => 'fail', error => $error } if $body->{definite};
    return { type => 'info', error => $error };
}

while (my $line = <STDIN>) {
    my $msg = $json->decode($line);
    my $type = $msg->{type};
    if ($type eq 'init') {
        $process = $msg->{process};
        my ($node) = grep { $_->{name} eq $msg->{node} } @{ $msg->{nodes} };
        $base = "http://$node->{addresses}{client}";
        print STDERR "process $process talks to $msg->{node} at $base\n";
        send_msg({ type => 'init_ok', protocol => 1 });
    } elsif ($type eq 'setup' || $type eq 'teardown') {
        send_msg({ type => "${type}_ok" });
    } elsif ($type eq 'invoke') {
        send_msg(invoke($msg));
    } else {
        send_msg({ type => 'error', error => "unknown message type $type" });
    }
}
