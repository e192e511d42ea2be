// Applies FirstLine's access plan to a Kafka cluster, idempotently: SCRAM users, ACLs and
// catalog topics. kafka.sh runs it (as the broker's super user) after every start, with the
// plan that `python -m common.principals plan` prints from the topic catalog.
//
//   java -cp 'var/kafka/libs/*' deploy/kafka/Provision.java ADMIN.properties PLAN.tsv
//
// Plan lines (tab-separated):
//   user     NAME PASSWORD                       SCRAM-SHA-512 credentials (upserted)
//   managed  PRINCIPAL                           ACLs of this principal not in the plan are deleted
//   acl      PRINCIPAL RESOURCE PATTERN NAME OP  e.g. acl User:command TOPIC LITERAL command.events.v1 WRITE
//   topic    NAME PARTITIONS REPLICATION k=v;k=v created when missing; configs set; partitions grown
// A single JVM does it all: one kafka-acls/kafka-configs run per line would take minutes.
import java.io.FileInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.acl.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.resource.*;

public class Provision {
    public static void main(String[] args) throws Exception {
        Properties config = new Properties();
        try (FileInputStream in = new FileInputStream(args[0])) { config.load(in); }
        List<String[]> plan = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(args[1]))) {
            if (!line.isBlank() && !line.startsWith("#")) plan.add(line.split("\t"));
        }
        try (Admin admin = Admin.create(config)) {
            users(admin, plan);
            acls(admin, plan);
            topics(admin, plan);
        }
    }

    static void users(Admin admin, List<String[]> plan) throws Exception {
        List<UserScramCredentialAlteration> upserts = new ArrayList<>();
        for (String[] p : plan) {
            if (p[0].equals("user")) {
                upserts.add(new UserScramCredentialUpsertion(
                    p[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), p[2]));
            }
        }
        if (!upserts.isEmpty()) admin.alterUserScramCredentials(upserts).all().get();
        System.out.println("provision: " + upserts.size() + " SCRAM users");
    }

    static void acls(Admin admin, List<String[]> plan) throws Exception {
        Set<String> managed = new HashSet<>();
        Set<AclBinding> wanted = new HashSet<>();
        for (String[] p : plan) {
            if (p[0].equals("managed")) managed.add(p[1]);
            if (p[0].equals("acl")) {
                wanted.add(new AclBinding(
                    new ResourcePattern(ResourceType.valueOf(p[2]), p[4], PatternType.valueOf(p[3])),
                    new AccessControlEntry(p[1], "*", AclOperation.valueOf(p[5]), AclPermissionType.ALLOW)));
            }
        }
        Collection<AclBinding> existing = admin.describeAcls(AclBindingFilter.ANY).values().get();
        List<AclBindingFilter> stale = new ArrayList<>();
        for (AclBinding b : existing) {
            if (managed.contains(b.entry().principal()) && !wanted.contains(b)) stale.add(b.toFilter());
        }
        if (!stale.isEmpty()) admin.deleteAcls(stale).all().get();
        List<AclBinding> missing = new ArrayList<>();
        for (AclBinding b : wanted) if (!existing.contains(b)) missing.add(b);
        if (!missing.isEmpty()) admin.createAcls(missing).all().get();
        System.out.println("provision: " + wanted.size() + " ACLs (" + missing.size() + " added, "
            + stale.size() + " removed)");
    }

    static void topics(Admin admin, List<String[]> plan) throws Exception {
        Map<String, String[]> wanted = new LinkedHashMap<>();
        for (String[] p : plan) if (p[0].equals("topic")) wanted.put(p[1], p);
        if (wanted.isEmpty()) return;
        Set<String> existing = admin.listTopics().names().get();
        List<NewTopic> create = new ArrayList<>();
        for (String[] p : wanted.values()) {
            if (existing.contains(p[1])) continue;
            create.add(new NewTopic(p[1], Integer.parseInt(p[2]), Short.parseShort(p[3])).configs(configs(p)));
        }
        try {
            if (!create.isEmpty()) admin.createTopics(create).all().get();
        } catch (ExecutionException e) {
            if (!(e.getCause() instanceof TopicExistsException)) throw e;
        }
        // Drift: the catalog's configs are set on topics that exist; partitions only grow
        // (fewer would re-key every aggregate), so more than the catalog says is reported.
        Map<ConfigResource, Collection<AlterConfigOp>> alter = new HashMap<>();
        Map<String, NewPartitions> grow = new HashMap<>();
        Map<String, TopicDescription> described = admin.describeTopics(wanted.keySet()).allTopicNames().get();
        for (String[] p : wanted.values()) {
            List<AlterConfigOp> ops = new ArrayList<>();
            configs(p).forEach((k, v) -> ops.add(new AlterConfigOp(new ConfigEntry(k, v), AlterConfigOp.OpType.SET)));
            alter.put(new ConfigResource(ConfigResource.Type.TOPIC, p[1]), ops);
            int have = described.get(p[1]).partitions().size(), want = Integer.parseInt(p[2]);
            if (have < want) grow.put(p[1], NewPartitions.increaseTo(want));
            if (have > want) System.out.println("provision: WARNING " + p[1] + " has " + have
                + " partitions, the catalog says " + want + " (not reduced)");
        }
        admin.incrementalAlterConfigs(alter).all().get();
        if (!grow.isEmpty()) admin.createPartitions(grow).all().get();
        System.out.println("provision: " + wanted.size() + " topics (" + create.size() + " created, "
            + grow.size() + " grown)");
    }

    static Map<String, String> configs(String[] p) {
        Map<String, String> out = new LinkedHashMap<>();
        if (p.length > 4 && !p[4].isEmpty()) {
            for (String kv : p[4].split(";")) {
                int eq = kv.indexOf('=');
                out.put(kv.substring(0, eq), kv.substring(eq + 1));
            }
        }
        return out;
    }
}
